"""The log backends the contract suite runs against; adding a backend is one entry here.

A :class:`Backend` knows how to open its log at a location (also in a child process:
``tests/log/child_log.py`` imports this module), and how to damage one stored record for
the damage-isolation test. Nothing is faked: each backend is the real store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb

from dtc_wal.log import TransactionLog
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    open: Callable[..., TransactionLog]
    """``open(location, **options)``; options: ``readonly``, ``sync``, ``small`` (a
    capacity of about a megabyte, for LogFullError)."""
    damage: Callable[[str, str, int], None]
    """``damage(location, txid, seq)``: change one byte of that stored record, with the
    log closed."""


def _open_lmdb(location: str, *, small: bool = False, **options: Any) -> TransactionLog:
    if small:
        options.update(map_size=256 * 1024, max_map_size=1024 * 1024)
    return LmdbLog(location, **options)


def _damage_lmdb(location: str, txid: str, seq: int) -> None:
    env = lmdb.open(location, max_dbs=8)
    try:
        records, txns = env.open_db(b"records"), env.open_db(b"txns")
        with env.begin(write=True) as txn:
            tn_key = txn.get(txid.encode(), db=txns)
            assert tn_key is not None, txid
            key = RECORD_KEY.pack(TN.unpack(tn_key)[0], seq)
            stored = txn.get(key, db=records)
            assert stored is not None, (txid, seq)
            value = bytearray(stored)
            value[-1] ^= 0x01  # the last payload byte: the checksum no longer matches
            txn.put(key, bytes(value), db=records)
    finally:
        env.close()


BACKENDS = {
    "lmdb": Backend("lmdb", _open_lmdb, _damage_lmdb),
}


def location(backend: Backend, tmp_path: Path) -> str:
    """A fresh location for ``backend`` under ``tmp_path``."""
    return str(tmp_path / f"{backend.name}-log")
