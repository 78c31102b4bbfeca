"""The log package's public names resolve, and its docstring examples run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "dtc_wal.log",
    "dtc_wal.log.interface",
    "dtc_wal.log.group_commit",
    "dtc_wal.protocol.records",
    "dtc_wal.log.lmdb",
    "dtc_wal.log.lmdb.backend",
    "dtc_wal.log.lmdb.codec",
    "dtc_wal.log.lmdb.layout",
    "dtc_wal.log.lmdb.store",
    "dtc_wal.log.lmdb.writer",
    "dtc_wal.log.lmdb.reader",
    "dtc_wal.log.lmdb.compact",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ names missing {exported}"


def test_lmdb_log_example_runs() -> None:
    result = doctest.testmod(importlib.import_module("dtc_wal.log.lmdb.backend"))
    assert result.attempted > 0 and result.failed == 0


def test_the_lmdb_log_implements_the_contract() -> None:
    from dtc_wal.log import TransactionLog
    from dtc_wal.log.lmdb import LmdbLog

    for name in ("append", "submit", "read", "unfinished", "transactions", "compact"):
        assert callable(getattr(LmdbLog, name)), name
    assert issubclass(LmdbLog, TransactionLog)
