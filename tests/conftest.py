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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--dtc-log-format",
        type=int,
        choices=(1, 2),
        default=None,
        help="the format of the logs coordinators make in this run (default: the library's)",
    )


@pytest.fixture(autouse=True, scope="session")
def _new_log_format(request: pytest.FixtureRequest) -> Iterator[None]:
    """``--dtc-log-format 2`` runs the suite on the new core: every new log is format 2."""
    from dtc_wal.coordinator import options

    wanted = request.config.getoption("--dtc-log-format")
    before = options.NEW_LOG_FORMAT
    if wanted is not None:
        options.NEW_LOG_FORMAT = wanted
    yield
    options.NEW_LOG_FORMAT = before


@pytest.fixture(autouse=True)
def _format1_tests_make_format1_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``format1`` reads format-1 log internals: the logs it makes are format 1
    whatever this version's default is."""
    from dtc_wal.coordinator import options

    if request.node.get_closest_marker("format1") is None:
        yield
        return
    before = options.NEW_LOG_FORMAT
    options.NEW_LOG_FORMAT = 1
    yield
    options.NEW_LOG_FORMAT = before


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--dtc-log-format") != 2:
        return
    skip = pytest.mark.skip(reason="reads format-1 log internals; its format-2 twin is in tests/")
    for item in items:
        if item.get_closest_marker("format1") is not None:
            item.add_marker(skip)
