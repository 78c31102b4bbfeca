"""The transaction log behind an interface (issue 12): format-2 records
(:mod:`.records`), the :class:`TransactionLog` contract (:mod:`.interface`), store-agnostic
group commit (:mod:`.group_commit`) and the LMDB backend (:mod:`.lmdb`, class
``LmdbLog``). Not yet used by the running coordinator, which still writes format 1 through
:mod:`dtc_wal.wal`."""

from __future__ import annotations

from .interface import Compacted, Damage, LogInfo, OnDone, StoredTransaction, TransactionLog

__all__ = [
    "Compacted",
    "Damage",
    "LogInfo",
    "OnDone",
    "StoredTransaction",
    "TransactionLog",
]
