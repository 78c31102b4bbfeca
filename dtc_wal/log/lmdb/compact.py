"""Compaction of a format-2 log: delete finished transactions that ended before a time.

Transactions are examined in the order they opened (transaction-number order, the
``records`` table's own order), so no index is kept for compaction and appends pay
nothing for it. The walk deletes each transaction whose last record is an ``Ended``
older than the limit, keeps unfinished and damaged ones, and stops at the first
transaction *opened* at or after the limit: it cannot have ended before it (the same
clock stamps both records), so a walk reads only what it deletes plus what it keeps on
the way. It works in bounded write transactions (``CHUNK`` transactions each) through the
store's write lock, so appends interleave with a long compaction. The file does not
shrink: LMDB reuses the freed pages. Deletes need fresh pages too, so compaction may grow
the map a little past its maximum (``COMPACTION_HEADROOM``): a full log stays compactable.
"""

from __future__ import annotations

import functools

import lmdb

from ...errors import RecordDamagedError
from ...protocol.records import Ended, Opened
from ..interface import Compacted
from .codec import RECORD_KEY, TN, decode, txid_key
from .store import LmdbStore

__all__ = ["compact"]

CHUNK = 500
"""Transactions examined per write transaction."""

_STOP = b"stop"


def compact(store: LmdbStore, before: float) -> Compacted:
    """Delete every finished transaction whose Ended record is older than ``before``."""
    transactions = records = 0
    start: bytes | None = TN.pack(0)
    while start is not None:
        step = functools.partial(_step, store=store, before=before, start=start)
        start, deleted, removed = store.write(step, freeing=True)
        transactions += deleted
        records += removed
    if transactions:
        # LMDB reuses the pages a write transaction freed only after a later one commits:
        # one more (tiny) commit makes the space free for the very next append.
        store.write(functools.partial(_high_water, store=store, force=True), freeing=True)
    return Compacted(transactions, records)


def _step(
    txn: lmdb.Transaction, store: LmdbStore, before: float, start: bytes
) -> tuple[bytes | None, int, int]:
    """Examine up to CHUNK transactions from ``start``; return where to go on (None:
    done), and how many transactions and records were deleted."""
    _high_water(txn, store)
    deleted = removed = 0
    with txn.cursor(db=store.records) as cur:
        for _ in range(CHUNK):
            if not cur.set_range(start):
                return None, deleted, removed
            first = bytes(cur.key())
            if len(first) < TN.size:
                start = first + b"\0"  # a damaged key: left for verify and repair
                continue
            tn_key = first[: TN.size]
            items: list[tuple[bytes, bytes]] = []
            while True:
                key = bytes(cur.key())
                if key[: TN.size] != tn_key:
                    break
                items.append((key, bytes(cur.value())))
                if not cur.next():
                    break
            start = TN.pack(TN.unpack(tn_key)[0] + 1)
            verdict = _verdict(txn, store, tn_key, items, before)
            if verdict is _STOP:
                return None, deleted, removed
            if verdict is None:
                continue
            for key, _value in items:
                txn.delete(key, db=store.records)
            if txn.get(verdict, db=store.txns) == tn_key:
                txn.delete(verdict, db=store.txns)
            deleted += 1
            removed += len(items)
    return start, deleted, removed


def _verdict(
    txn: lmdb.Transaction,
    store: LmdbStore,
    tn_key: bytes,
    items: list[tuple[bytes, bytes]],
    before: float,
) -> bytes | None:
    """_STOP, None (keep it), or the txns key of a transaction to delete."""
    try:
        key, value = items[0]
        opened = decode(key, value, None, 0)
        if type(opened) is not Opened or RECORD_KEY.unpack(key)[1] != 0:
            return None
        if opened.at >= before:
            return _STOP
        if txn.get(tn_key, db=store.unfinished) is not None:
            return None
        key, value = items[-1]
        last = decode(key, value, opened.txid, len(items) - 1)
    except (RecordDamagedError, ValueError):
        return None  # damaged: kept for verify and repair
    if type(last) is not Ended or last.at >= before:
        return None
    return txid_key(opened.txid)


def _high_water(txn: lmdb.Transaction, store: LmdbStore, force: bool = False) -> None:
    """Keep ``meta/last-tn`` at the highest transaction number ever used, so deleting the
    newest transactions never lets a number be used twice (``force``: write it anyway)."""
    raw = txn.get(b"last-tn", db=store.meta)
    last = TN.unpack(raw)[0] if raw is not None and len(raw) == TN.size else 0
    top = last
    with txn.cursor(db=store.records) as cur:
        if cur.last() and len(cur.key()) >= TN.size:
            top = max(top, TN.unpack(cur.key()[: TN.size])[0])
    if top > last or force:
        txn.put(b"last-tn", TN.pack(top), db=store.meta)
