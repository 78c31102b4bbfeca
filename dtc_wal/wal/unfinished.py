"""Read every unfinished transaction at open, keeping damage local to its own transaction.

Start-up reads the ``unfinished`` index and, per transaction, its summary in ``txns`` and
the records the summary names (docs/log-format.md). Whatever of that cannot be read back --
a record that is truncated, has a bad length, fails its checksum, has an unknown version or
an invalid payload, is missing, or breaks the transition table; a summary that is missing,
fails its checksum or is not a summary; a record of another transaction -- makes that one
transaction a :class:`Damage`: it is reported in doubt with the reason, left unfinished in
the log, and never driven (its records are not trustworthy). Every other transaction is
read as usual. Only damage to the log's own meta or to the LMDB file stops an open
(:class:`~dtc_wal.wal.store.LogStore`).

What start-up cannot know: an ``unfinished`` key that is not UTF-8 names no transaction
(:attr:`Damage.txid` is None), and a transaction whose ``unfinished`` entry is gone is not
seen at all; ``dtc verify`` cross-checks the indexes and finds both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import lmdb
import msgpack

from ..errors import LogCorruptError
from ..history import TransactionView, replay_until_refused
from ..records import LogRecord, decode_record, lsn_key, unframe, unpack
from .store import LogStore

__all__ = ["Damage", "load_unfinished"]

_MAX_LSN = 2**64 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class Damage:
    """An unfinished transaction that cannot be read back, and why."""

    txid: str | None
    """The transaction id (its key in the index), or None when the key itself is unreadable."""
    lsn: int | None
    """The LSN of the first damaged record; None when the index entry is what is damaged."""
    reason: str
    """What is wrong, as the reader found it."""
    key: bytes
    """The transaction's key in the ``unfinished`` index, as stored."""
    state: str | None = None
    """Its state per its index entry, when that entry is readable (derived data: a hint)."""
    participants: tuple[str, ...] = ()
    """Its participants per its index entry, when that entry is readable."""

    @property
    def name(self) -> str:
        """The txid, or a stand-in naming the unreadable key."""
        if self.txid is not None:
            return self.txid
        return f"<unreadable txid {self.key.hex()}>"

    @property
    def where(self) -> str:
        """``LSN n``, or ``its index entry`` when that is what is damaged."""
        return f"LSN {self.lsn}" if self.lsn is not None else "its index entry"

    def __str__(self) -> str:
        return f"{self.name} damaged at {self.where}: {self.reason}"


def load_unfinished(store: LogStore) -> tuple[list[TransactionView], list[Damage]]:
    """Every transaction the ``unfinished`` index lists: the views of those whose records
    replay (oldest first), and the damaged ones (in index order). Never raises for damage
    to one transaction; one LMDB read transaction sees one consistent snapshot."""
    views: list[TransactionView] = []
    damaged: list[Damage] = []
    with store.reader() as txn:
        with txn.cursor(db=store.unfinished_db) as cur:
            keys = [bytes(k) for k in cur.iternext(keys=True, values=False)]
        for key in keys:
            result = _read_one(store, txn, key)
            if isinstance(result, Damage):
                damaged.append(result)
            else:
                views.append(result)
    views.sort(key=lambda v: (v.created_at, v.lsns[:1]))
    return views, damaged


def _read_one(store: LogStore, txn: lmdb.Transaction, key: bytes) -> TransactionView | Damage:
    try:
        txid = key.decode()
    except UnicodeDecodeError:
        return Damage(
            None,
            None,
            f"the unfinished index holds the key {key!r}, which is not UTF-8 and so names no "
            "transaction: the transaction it stood for cannot be known from the index -- "
            "`dtc verify` cross-checks the indexes",
            key,
        )
    raw = txn.get(key, db=store.txns)
    if raw is None:
        return Damage(
            txid,
            None,
            f"the unfinished index lists {txid} but the txns index holds no entry for it, so "
            "its records cannot be found (one of the two keys may be damaged) -- `dtc verify` "
            "cross-checks the indexes",
            key,
        )
    try:
        summary = _summary(bytes(raw), txid)
    except LogCorruptError as exc:
        return Damage(txid, None, str(exc), key)
    state = summary.get("s")
    parts = summary.get("p")

    def damage(lsn: int | None, why: str) -> Damage:
        return Damage(
            txid,
            lsn,
            why,
            key,
            state if isinstance(state, str) else None,
            tuple(str(p) for p in parts) if isinstance(parts, dict) else (),
        )

    records: list[tuple[int, LogRecord]] = []
    for lsn in summary["l"]:
        value = txn.get(lsn_key(lsn), db=store.records)
        if value is None:
            return damage(lsn, f"record at LSN {lsn} is missing from the log")
        try:
            record = decode_record(bytes(value), lsn)
        except LogCorruptError as exc:
            return damage(lsn, str(exc))
        if record.txid != txid:
            return damage(
                lsn, f"record at LSN {lsn} belongs to transaction {record.txid}, not to {txid}"
            )
        records.append((lsn, record))
    return _replay(records, damage)


def _summary(raw: bytes, txid: str) -> dict[str, Any]:
    what = f"summary of {txid}"
    payload = unframe(raw, what=what)
    try:
        decoded = unpack(payload)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise LogCorruptError(f"{what} passes its checksum but is not msgpack ({exc})") from exc
    if not isinstance(decoded, dict):
        raise LogCorruptError(f"{what} passes its checksum but is not a map")
    summary: dict[str, Any] = decoded
    lsns = summary.get("l")
    if (
        not isinstance(lsns, list)
        or not lsns
        or not all(type(n) is int and 0 < n <= _MAX_LSN for n in lsns)
    ):
        raise LogCorruptError(f"{what} passes its checksum but lists no valid record LSNs")
    return summary


def _replay(
    records: list[tuple[int, LogRecord]], damage: Callable[[int | None, str], Damage]
) -> TransactionView | Damage:
    view, lsn, error = replay_until_refused(records)
    if error is not None:
        return damage(lsn, f"record at LSN {lsn} breaks the transition table: {error}")
    assert view is not None  # the summary lists at least one LSN
    if view.state.finished:
        return damage(
            None,
            f"its records show it {view.state.value}, yet the unfinished index lists it "
            "(the indexes disagree)",
        )
    return view
