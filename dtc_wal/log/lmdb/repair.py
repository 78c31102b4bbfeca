"""Offline maintenance of a format-2 LMDB log that :class:`~.backend.LmdbLog` does not do:
a consistent copy (``dtc backup``) and dropping one damaged transaction (``dtc repair``).

Both take the log's directory lock first (LogLockedError while a coordinator holds it), so
nothing writes meanwhile; the copy is LMDB's own (one read snapshot), and is checked to
open as a format-2 log before it is reported.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import lmdb

from ...errors import LogError, TransactionStateError, UnknownTransactionError
from ..interface import StoredTransaction
from .backend import LmdbLog
from .codec import TN, txid_key
from .directory import DirectoryLock
from .reader import read_range
from .store import LmdbStore

__all__ = ["Dropped", "backup_log", "drop_transaction"]


def _copy(store: LmdbStore, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=False)
    store.env.copy(str(dest))
    with open(dest / "data.mdb", "rb") as f:
        os.fsync(f.fileno())
    with LmdbLog(dest, readonly=True) as copied:  # the copy opens as a format-2 log
        copied.info()
    return dest


def backup_log(path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Copy the log at ``path`` into the new directory ``dest`` (which must not exist),
    under its directory lock; return ``dest``."""
    directory = Path(path)
    lock = DirectoryLock(directory)
    lock.acquire()
    try:
        store = LmdbStore(directory, readonly=True)
        try:
            return _copy(store, Path(dest))
        finally:
            store.close()
    finally:
        lock.release()


@dataclasses.dataclass(frozen=True, slots=True)
class Dropped:
    """What :func:`drop_transaction` removed, and the evidence it kept."""

    txid: str
    backup: Path
    before: StoredTransaction
    """The transaction as it read just before it was dropped (records up to the damage)."""
    records_removed: int


def drop_transaction(
    path: str | os.PathLike[str], txid: str, backup_to: str | os.PathLike[str], *, force: bool
) -> Dropped:
    """Copy the log to ``backup_to``, then delete transaction ``txid`` -- every stored
    record (damaged ones too), its index entry and its unfinished entry -- in one LMDB
    transaction. Refuses a transaction that reads and is not damaged unless ``force``."""
    directory = Path(path)
    lock = DirectoryLock(directory)
    lock.acquire()
    try:
        store = LmdbStore(directory)
        try:
            before = _read(store, txid)
            if before is None:
                raise UnknownTransactionError(txid)
            if before.damage is None and not force:
                raise TransactionStateError(f"transaction {txid} is not damaged")
            backup = _copy(store, Path(backup_to))
            removed = store.write(lambda txn: _delete(store, txn, txid))
        finally:
            store.close()
    finally:
        lock.release()
    return Dropped(txid, backup, before, removed)


def _read(store: LmdbStore, txid: str) -> StoredTransaction | None:
    with store.reader() as txn:
        tn_key = txn.get(txid_key(txid), db=store.txns)
        return None if tn_key is None else read_range(txn, store, bytes(tn_key), txid)


def _delete(store: LmdbStore, txn: lmdb.Transaction, txid: str) -> int:
    key = txid_key(txid)
    tn_key = txn.get(key, db=store.txns)
    if tn_key is None:
        raise UnknownTransactionError(txid)
    tn_key = bytes(tn_key)
    if len(tn_key) != TN.size:
        raise LogError(f"the index entry of {txid} is damaged: restore the log from a backup")
    removed = 0
    with txn.cursor(db=store.records) as cur:
        if cur.set_range(tn_key):
            while bytes(cur.key())[: TN.size] == tn_key and cur.delete():
                removed += 1
    txn.delete(key, db=store.txns)
    txn.delete(tn_key, db=store.unfinished)
    return removed
