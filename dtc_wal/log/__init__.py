"""The transaction log behind an interface: the :class:`TransactionLog` contract
(:mod:`.interface`) over format-2 records (:mod:`dtc_wal.protocol.records`), store-agnostic
group commit (:mod:`.group_commit`) and the LMDB backend (:mod:`.lmdb`, class ``LmdbLog``)."""

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
