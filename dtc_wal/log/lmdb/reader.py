"""Reading format-2 transactions back: one cursor range per transaction, damage isolated.

Every function here turns damage into a :class:`StoredTransaction` with ``damage`` set and
never raises it, so one damaged record sets aside only its own transaction. Iterators read
in chunks of short read transactions, so a slow consumer pins no LMDB snapshot -- unless
given one read transaction (:meth:`LmdbLog.snapshot`): then they read all of it from that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import lmdb

from ...errors import RecordDamagedError
from ...protocol.records import Opened, Record
from ..interface import Damage, StoredTransaction
from .codec import RECORD_KEY, TN, decode
from .store import LmdbStore

__all__ = ["Stray", "iter_transactions", "iter_unfinished", "read_range", "stray_records"]

CHUNK = 128
"""Transactions read per read transaction by the iterators."""

_HELP = (
    "; the transaction is set aside (in doubt) and the rest of the log reads normally -- "
    'settle its participants by hand (docs/log-format.md, "Damaged records")'
)


def _index_damage(txid: str, problem: str, seq: int | None = None) -> RecordDamagedError:
    return RecordDamagedError(f"transaction {txid}: {problem}{_HELP}", txid, seq, Damage.INDEX)


def read_range(
    txn: lmdb.Transaction, store: LmdbStore, tn_key: bytes, txid: str
) -> StoredTransaction:
    """The records of transaction number ``tn_key`` (8 bytes), checked in sequence."""
    if len(tn_key) != TN.size:
        return StoredTransaction(
            txid, (), _index_damage(txid, f"its index entry is {len(tn_key)} bytes, not 8")
        )
    records: list[Record] = []
    with txn.cursor(db=store.records) as cur:
        if cur.set_range(tn_key + b"\0\0\0\0"):
            for raw_key, value in cur:
                key = bytes(raw_key)
                if key[:8] != tn_key:
                    break
                seq = len(records)
                try:
                    records.append(_check(key, bytes(value), txid, seq))
                except RecordDamagedError as exc:
                    return StoredTransaction(txid, tuple(records), exc)
    if not records:
        return StoredTransaction(txid, (), _index_damage(txid, "its index names no records"))
    return StoredTransaction(txid, tuple(records))


def _check(key: bytes, value: bytes, txid: str, seq: int) -> Record:
    """Decode the record expected at ``seq`` (0, 1, ...) of ``txid``, or raise its damage."""
    stored = RECORD_KEY.unpack(key)[1] if len(key) == RECORD_KEY.size else None
    if stored != seq:
        what = f"a {len(key)}-byte key" if stored is None else f"record {stored}"
        raise RecordDamagedError(
            f"record {seq} of transaction {txid} is missing (the next stored is {what}): "
            f"the sequence has a gap{_HELP}",
            txid,
            seq,
            Damage.GAP,
        )
    record = decode(key, value, txid, seq)
    if (seq == 0) is not (type(record) is Opened):
        problem = "is not Opened" if seq == 0 else "is a second Opened"
        raise RecordDamagedError(
            f"record {seq} of transaction {txid} {problem}: the sequence is broken{_HELP}",
            txid,
            seq,
            Damage.GAP,
        )
    return record


def _seek(cur: lmdb.Cursor, key: bytes) -> bool:
    return bool(cur.set_range(key) if key else cur.first())


def _txid(raw: bytes) -> tuple[str, RecordDamagedError | None]:
    try:
        return raw.decode(), None
    except UnicodeDecodeError:
        txid = raw.decode("utf-8", "backslashreplace")
        return txid, _index_damage(txid, "its id in the index is not UTF-8")


def _unfinished_rows(
    txn: lmdb.Transaction, store: LmdbStore, after: bytes, limit: int | None
) -> Iterator[tuple[bytes, StoredTransaction]]:
    """``(key, transaction)`` of the ``unfinished`` rows after ``after``, up to ``limit``."""
    count = 0
    with txn.cursor(db=store.unfinished) as cur:
        if not _seek(cur, after):
            return
        for raw_key, raw in cur:
            tn_key = bytes(raw_key)
            if tn_key == after:
                continue
            txid, damage = _txid(bytes(raw))
            yield (
                tn_key,
                (
                    StoredTransaction(txid, (), damage)
                    if damage is not None
                    else read_range(txn, store, tn_key, txid)
                ),
            )
            count += 1
            if limit is not None and count >= limit:
                return


def _transaction_rows(
    txn: lmdb.Transaction, store: LmdbStore, start: bytes, prefix: bytes, limit: int | None
) -> Iterator[tuple[bytes, StoredTransaction]]:
    """``(key, transaction)`` of the ``txns`` rows from ``start`` on whose key starts with
    ``prefix``, up to ``limit``."""
    count = 0
    with txn.cursor(db=store.txns) as cur:
        if not _seek(cur, start):
            return
        for raw_key, tn_key in cur:
            key = bytes(raw_key)
            if not key.startswith(prefix):
                return
            txid, damage = _txid(key)
            yield (
                key,
                (
                    StoredTransaction(txid, (), damage)
                    if damage is not None
                    else read_range(txn, store, bytes(tn_key), txid)
                ),
            )
            count += 1
            if limit is not None and count >= limit:
                return


def iter_unfinished(
    store: LmdbStore, txn: lmdb.Transaction | None = None
) -> Iterator[StoredTransaction]:
    """Every transaction in the ``unfinished`` table, in transaction-number order: all from
    ``txn`` when given (one snapshot), else in chunks of short read transactions."""
    if txn is not None:
        for _, stored in _unfinished_rows(txn, store, b"", None):
            yield stored
        return
    after = b""
    while True:
        with store.reader() as chunk_txn:
            chunk = list(_unfinished_rows(chunk_txn, store, after, CHUNK))
        if not chunk:
            return
        after = chunk[-1][0]
        for _, stored in chunk:
            yield stored


def iter_transactions(
    store: LmdbStore, prefix: bytes, txn: lmdb.Transaction | None = None
) -> Iterator[StoredTransaction]:
    """Every transaction in the ``txns`` table whose key starts with ``prefix``: all from
    ``txn`` when given (one snapshot), else in chunks of short read transactions."""
    if txn is not None:
        for _, stored in _transaction_rows(txn, store, prefix, prefix, None):
            yield stored
        return
    start = prefix
    while True:
        with store.reader() as chunk_txn:
            chunk = list(_transaction_rows(chunk_txn, store, start, prefix, CHUNK))
        if not chunk:
            return
        start = chunk[-1][0] + b"\0"  # the smallest key after the last one read
        for _, stored in chunk:
            yield stored


@dataclasses.dataclass(frozen=True, slots=True)
class Stray:
    """Records no index names: one transaction number's range of the ``records`` table
    (or one key too short to hold a number) that neither ``txns`` nor ``unfinished`` points
    to. Nothing reads them: the transaction they belonged to is lost to recovery."""

    key: bytes
    """The first stored key of the range."""
    records: int
    txid: str | None
    """What the range's ``Opened`` (its first record) names, when it reads back."""


def stray_records(txn: lmdb.Transaction, store: LmdbStore) -> Iterator[Stray]:
    """Every range of records no index entry names, in key order, from one snapshot."""
    named: set[bytes] = set()
    with txn.cursor(db=store.txns) as cur:
        named.update(bytes(v) for v in cur.iternext(keys=False, values=True))
    with txn.cursor(db=store.unfinished) as cur:
        named.update(bytes(k) for k in cur.iternext(keys=True, values=False))
    with txn.cursor(db=store.records) as cur:
        found = cur.first()
        while found:
            key = bytes(cur.key())
            tn_key = key[: TN.size]
            if len(key) < TN.size:
                yield Stray(key, 1, None)
                found = cur.next()
                continue
            if tn_key in named:
                found = _past(cur, tn_key)
                continue
            first = bytes(cur.value())
            count = 0
            while found and bytes(cur.key())[: TN.size] == tn_key:
                count += 1
                found = cur.next()
            txid: str | None = None
            try:
                opened = decode(key, first, None, 0)
                txid = opened.txid
            except RecordDamagedError:
                pass
            yield Stray(key, count, txid)


def _past(cur: lmdb.Cursor, tn_key: bytes) -> bool:
    """Move to the first key after transaction number ``tn_key``'s range."""
    number = TN.unpack(tn_key)[0]
    if number == 2**64 - 1:
        return False
    return bool(cur.set_range(TN.pack(number + 1)))
