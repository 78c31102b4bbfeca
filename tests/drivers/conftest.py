"""Fixtures of the driver tests: a real LMDB log (format 2) in ``tmp_path`` whose lazy
appends ride only the next sync (a long flusher delay), so sync counts are exact, and an
engine over it with instant backoff."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dtc_wal.drivers import Engine, EngineOptions
from dtc_wal.drivers.calls import CallPolicy
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.registry import ParticipantRegistry

FAST_RETRIES = CallPolicy(max_retries=3, backoff_initial=0.0, backoff_max=0.0, jitter=0.0)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[LmdbLog]:
    with LmdbLog(tmp_path / "log", lazy_delay=60.0) as opened:
        yield opened


@pytest.fixture
def registry() -> ParticipantRegistry:
    return ParticipantRegistry()


@pytest.fixture
def engine(log: LmdbLog, registry: ParticipantRegistry) -> Iterator[Engine]:
    with Engine(log, registry, EngineOptions(policy=FAST_RETRIES)) as opened:
        yield opened
