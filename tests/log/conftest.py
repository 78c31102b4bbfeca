"""Fixtures of the TransactionLog contract suite: one parameter per backend
(tests/log/backends.py), logs that always close, and format-2 records to append."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dtc_wal.log import TransactionLog
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol.records import (
    Decided,
    Ended,
    MemberSpec,
    MemberState,
    Mode,
    Opened,
    Outcome,
    Vote,
)

from .backends import BACKENDS, Backend

MEMBERS = (
    MemberSpec("inventory", "inv", {"sku": "A1", "qty": 2}),
    MemberSpec("payment", "pay", {"amount": 12.5}),
    MemberSpec("shipping", None),
)

_ids = itertools.count(1)


def new_txid() -> str:
    return f"tx-{next(_ids):06d}"


def opened(txid: str, at: float | None = None) -> Opened:
    return Opened(txid, time.time() if at is None else at, Mode.TWO_PHASE, MEMBERS, {"o": 1})


def decided(txid: str, at: float | None = None) -> Decided:
    at = time.time() if at is None else at
    return Decided(txid, at, Outcome.COMMIT, ((0, Vote.YES), (1, Vote.YES), (2, Vote.READ_ONLY)))


def ended(txid: str, at: float | None = None) -> Ended:
    at = time.time() if at is None else at
    return Ended(txid, at, ((0, MemberState.COMMITTED), (1, MemberState.COMMITTED)))


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def where(backend: Backend, tmp_path: Path) -> str:
    return str(tmp_path / f"{backend.name}-log")


@pytest.fixture
def open_log(backend: Backend, where: str) -> Iterator[Callable[..., TransactionLog]]:
    """Open logs at ``where`` (options pass through to the backend); all are closed at
    the end of the test, also when it fails."""
    opened_logs: list[TransactionLog] = []

    def make(**options: Any) -> TransactionLog:
        log = backend.open(where, **options)
        opened_logs.append(log)
        return log

    yield make
    for log in reversed(opened_logs):
        log.close()


CHILD = str(Path(__file__).with_name("child_log.py"))


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


MakeLog = Callable[..., LmdbLog]


@pytest.fixture
def make_log(log_dir: Path) -> Iterator[MakeLog]:
    """Open LMDB logs on ``log_dir`` (or ``path=``), options passed through; all are closed
    at the end of the test."""
    opened_logs: list[LmdbLog] = []

    def make(**options: Any) -> LmdbLog:
        log = LmdbLog(options.pop("path", log_dir), **options)
        opened_logs.append(log)
        return log

    yield make
    for log in reversed(opened_logs):
        log.close()
