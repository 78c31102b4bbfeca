"""Reading format-2 transactions back: one cursor range per transaction, damage isolated.

Every function here turns damage into a :class:`StoredTransaction` with ``damage`` set and
never raises it, so one damaged record sets aside only its own transaction. Iterators read
in chunks of short read transactions, so a slow consumer pins no LMDB snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator

import lmdb

from ...errors import RecordDamagedError
from ...protocol.records import Opened, Record
from ..interface import Damage, StoredTransaction
from .codec import RECORD_KEY, TN, decode
from .store import LmdbStore

__all__ = ["iter_transactions", "iter_unfinished", "read_range"]

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


def iter_unfinished(store: LmdbStore) -> Iterator[StoredTransaction]:
    """Every transaction in the ``unfinished`` table, in transaction-number order."""
    after = b""
    while True:
        chunk: list[StoredTransaction] = []
        with store.reader() as txn, txn.cursor(db=store.unfinished) as cur:
            if not _seek(cur, after):
                return
            for raw_key, raw in cur:
                tn_key = bytes(raw_key)
                if tn_key == after:
                    continue
                txid, damage = _txid(bytes(raw))
                chunk.append(
                    StoredTransaction(txid, (), damage)
                    if damage is not None
                    else read_range(txn, store, tn_key, txid)
                )
                after = tn_key
                if len(chunk) >= CHUNK:
                    break
        if not chunk:
            return
        yield from chunk


def iter_transactions(store: LmdbStore, prefix: bytes) -> Iterator[StoredTransaction]:
    """Every transaction in the ``txns`` table whose key starts with ``prefix``."""
    start = prefix
    while True:
        chunk: list[StoredTransaction] = []
        with store.reader() as txn, txn.cursor(db=store.txns) as cur:
            if not _seek(cur, start):
                return
            for raw_key, tn_key in cur:
                key = bytes(raw_key)
                if not key.startswith(prefix):
                    break
                txid, damage = _txid(key)
                chunk.append(
                    StoredTransaction(txid, (), damage)
                    if damage is not None
                    else read_range(txn, store, bytes(tn_key), txid)
                )
                start = key + b"\0"  # the smallest key after this one
                if len(chunk) >= CHUNK:
                    break
        if not chunk:
            return
        yield from chunk
