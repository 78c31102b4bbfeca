"""Shared fixtures: a real LMDB log directory per test, coordinators that always close,
a manual clock, and a journal that recording participants write to (tests/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Journal

from dtc_wal import ManualClock, ParticipantRegistry, TransactionCoordinator


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """Where the test's log lives (created by whoever opens it first)."""
    return tmp_path / "log"


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry() -> ParticipantRegistry:
    return ParticipantRegistry()


@pytest.fixture
def make_coord(
    log_dir: Path, registry: ParticipantRegistry
) -> Iterator[Callable[..., TransactionCoordinator]]:
    """Open coordinators on ``log_dir`` (keyword arguments pass through); all are closed
    at the end of the test, also when it fails."""
    opened: list[TransactionCoordinator] = []

    def make(**kwargs: Any) -> TransactionCoordinator:
        kwargs.setdefault("registry", registry)
        coord = TransactionCoordinator(kwargs.pop("path", log_dir), **kwargs)
        opened.append(coord)
        return coord

    yield make
    for coord in reversed(opened):
        coord.close()


@pytest.fixture
def coord(
    make_coord: Callable[..., TransactionCoordinator], clock: ManualClock
) -> TransactionCoordinator:
    """A coordinator with a manual clock (retries sleep instantly) and a short prepare
    timeout, so a test that goes wrong fails fast instead of hanging."""
    return make_coord(clock=clock, prepare_timeout=10.0, phase2_timeout=10.0)
