"""Reading a format-2 log for the CLI, only through :class:`~dtc_wal.log.TransactionLog`.

Each stored transaction becomes an :class:`Entry`: its records, what they fold to, and why
it cannot be trusted (damage in the log, or records that break the transition table).
Format 2 has no LSNs: a record is named by its position in its transaction (``seq``: 0 is
``Opened``), as ``dtc verify`` names it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...drivers import report as words
from ...errors import LogError
from ...log import StoredTransaction
from ...log.lmdb import LmdbLog, log_format
from ...protocol import OutOfOrderError, Transaction, fold
from ...protocol.records import (
    Acked,
    Decided,
    Ended,
    Failed,
    Opened,
    Record,
    Resolved,
    StepDone,
)
from ...recovery.report import DAMAGED, InDoubt
from ..errors import CliError
from ..logs import require_log, unknown_transaction, warn_if_lockless
from ..output import format_time

__all__ = [
    "DAMAGED",
    "Entry",
    "entry_of",
    "find_entry",
    "in_doubt_of",
    "is_format2",
    "open_readonly",
    "open_writable",
    "record_dict",
    "record_type",
]


def is_format2(log: Path) -> bool:
    """True when ``log`` holds a format-2 log (read from its meta table, no lock). A log
    that cannot be read at all goes the format-1 way, which says what is wrong."""
    try:
        return log_format(log) == 2
    except LogError:
        return False


@contextlib.contextmanager
def open_readonly(log: Path) -> Iterator[LmdbLog]:
    """The log for reading beside a live writer, as one snapshot (:meth:`LmdbLog.snapshot`):
    a command sees every table as of one moment, never a writer's commit half-read (a
    transaction in ``unfinished`` but not in ``txns``, say). A lockless read warns on
    stderr."""
    require_log(log)
    warn_if_lockless(log)
    opened = LmdbLog(log, readonly=True)
    try:
        with opened.snapshot():
            yield opened
    finally:
        opened.close()


@contextlib.contextmanager
def open_writable(log: Path) -> Iterator[LmdbLog]:
    """The log for writing: takes its directory lock (LogLockedError, exit 3, while live)."""
    require_log(log)
    opened = LmdbLog(log)
    try:
        yield opened
    finally:
        opened.close()


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One stored transaction as the CLI shows it."""

    stored: StoredTransaction
    tx: Transaction | None
    """What the records fold to (up to the damage, when damaged; None: nothing folds)."""
    damage: str | None
    """Why the transaction cannot be trusted (None: it reads and folds cleanly)."""

    @property
    def txid(self) -> str:
        return self.stored.txid

    @property
    def state(self) -> str:
        """The folded state, or ``damaged``."""
        if self.damage is not None or self.tx is None:
            return DAMAGED
        return self.tx.state.value

    @property
    def finished(self) -> bool:
        return self.damage is None and self.tx is not None and self.tx.ended

    @property
    def opened_at(self) -> float | None:
        first = self.stored.records[0] if self.stored.records else None
        return first.at if isinstance(first, Opened) else None

    def names(self) -> list[str]:
        first = self.stored.records[0] if self.stored.records else None
        return [m.name for m in first.members] if isinstance(first, Opened) else []


def _fold_prefix(records: Sequence[Record]) -> tuple[Transaction | None, str | None]:
    """Fold as far as the records allow: the transaction and the refusal, if any."""
    if not records:
        return None, None
    try:
        tx = Transaction.open(records[0])  # type: ignore[arg-type]
    except OutOfOrderError as exc:
        return None, f"record 0 does not fold: {exc}"
    for seq, record in enumerate(records[1:], start=1):
        try:
            tx.apply(record)
        except OutOfOrderError as exc:
            return tx, f"record {seq} does not fold: {exc}"
    return tx, None


def entry_of(stored: StoredTransaction) -> Entry:
    tx, refused = _fold_prefix(stored.records)
    if stored.damage is not None:
        return Entry(stored, tx, str(stored.damage))
    return Entry(stored, tx, refused)


def in_doubt_of(entry: Entry) -> list[InDoubt]:
    """The participants of an unfinished transaction still to be told its outcome (as
    ``Engine.in_doubt`` lists them), or one ``damaged`` entry for a damaged one."""
    stored = entry.stored
    if stored.damage is not None:
        return [words.damaged(stored.txid, stored.damage, stored.records)[1]]
    try:
        tx = fold(stored.records)
    except OutOfOrderError as exc:
        return [words.not_folding(stored.txid, exc, stored.records)[1]]
    return words.pending_of(tx)


def find_entry(log: LmdbLog, txid: str) -> Entry:
    """The transaction ``txid``, or the one transaction it is a prefix of."""
    stored = log.read(txid)
    if stored is not None:
        return entry_of(stored)
    matches: list[StoredTransaction] = []
    if txid:
        for candidate in log.transactions(txid):
            matches.append(candidate)
            if len(matches) > 5:
                break
    if len(matches) == 1:
        return entry_of(matches[0])
    if matches:
        names = [m.txid for m in matches]
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CliError(f"{txid!r} is the start of several transactions ({shown}); give more of it")
    raise unknown_transaction(txid, log.path)


_TYPES: dict[type[Any], str] = {
    Opened: "opened",
    StepDone: "step-done",
    Decided: "decided",
    Acked: "acked",
    Ended: "ended",
    Failed: "failed",
    Resolved: "resolved",
}


def record_type(record: Record) -> str:
    return _TYPES[type(record)]


def _name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else f"#{index}"


def record_dict(record: Record, seq: int, names: Sequence[str]) -> dict[str, Any]:
    """One record as JSON: ``seq`` (its position in its transaction), ``time``, ``type``,
    ``txid``, ``at`` and its fields; members are named, not numbered."""
    out: dict[str, Any] = {
        "seq": seq,
        "time": format_time(record.at),
        "type": record_type(record),
        "txid": record.txid,
        "at": record.at,
    }
    if isinstance(record, Opened):
        out["mode"] = record.mode.value
        out["members"] = [
            {"name": m.name, "factory": m.factory, "params": m.params} for m in record.members
        ]
        out["data"] = record.data
    elif isinstance(record, StepDone):
        out["participant"] = _name(names, record.index)
    elif isinstance(record, Decided):
        out["outcome"] = words.word(record.outcome)
        out["votes"] = {_name(names, i): v.value for i, v in record.votes}
        out["reason"] = record.reason
        out["actor"] = record.actor
    elif isinstance(record, Acked | Ended):
        out["acks"] = {_name(names, i): s.value for i, s in record.acks}
    elif isinstance(record, Failed):
        out["participant"] = _name(names, record.member)
        out["op"] = record.op.value
        out["error"] = record.error
        out["attempts"] = record.attempts
    else:
        out["participant"] = _name(names, record.member)
        out["outcome"] = words.word(record.outcome)
        out["actor"] = record.actor
        out["reason"] = record.reason
    return out
