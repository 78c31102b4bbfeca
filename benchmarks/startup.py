"""Start-up cost against history size, and the re-drive rate of unfinished transactions.

Logs are written in bulk through the format-2 log itself (the records the coordinator
writes for a 3-participant 2PC commit), far faster than running the coordinator a million
times.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator

from dtc_wal import TransactionCoordinator
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol.records import (
    Decided,
    Ended,
    MemberSpec,
    MemberState,
    Mode,
    Opened,
    Outcome,
    Record,
    Vote,
)

from .workloads import noop_registry

NAMES = ("a", "b", "c")
MEMBERS = tuple(MemberSpec(name, "noop", None) for name in NAMES)
VOTES = tuple((i, Vote.YES) for i in range(len(NAMES)))
ACKS = tuple((i, MemberState.COMMITTED) for i in range(len(NAMES)))


def _transaction(txid: str, at: float, finished: bool) -> Iterator[Record]:
    """A 3-participant 2PC commit as the format-2 coordinator logs it; unfinished ones
    stop at the decision (recovery sends the commits)."""
    yield Opened(txid, at, Mode.TWO_PHASE, MEMBERS)
    yield Decided(txid, at, Outcome.COMMIT, VOTES)
    if finished:
        yield Ended(txid, at, ACKS)


def write_log(path: str, finished: int, unfinished: int, batch: int = 2000) -> None:
    """A format-2 log holding ``finished`` + ``unfinished`` transactions, written through
    the log itself in large appends with sync off (start-up then reads it from the page
    cache, as a coordinator restarted on a warm machine does)."""
    log = LmdbLog(path, sync=False, map_size=1 << 30, max_map_size=1 << 36)
    at = time.time()
    plan = [True] * finished + [False] * unfinished
    for start in range(0, len(plan), batch):
        records = [
            record
            for done in plan[start : start + batch]
            for record in _transaction(str(uuid.uuid4()), at, done)
        ]
        log.append(records)
    log.close()


def open_time(path: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        coord = TransactionCoordinator(path, registry=noop_registry(), recovery_interval=None)
        times.append(time.perf_counter() - t0)
        coord.close()
    return statistics.median(times)


def startup(finished: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="dtc-bench-empty-") as empty,
        tempfile.TemporaryDirectory(prefix="dtc-bench-full-") as full,
    ):
        write_log(empty, 0, 0)
        t0 = time.perf_counter()
        write_log(full, finished, 0)
        build = time.perf_counter() - t0
        return {
            "finished": finished,
            "build_s": build,
            "open_empty_s": open_time(empty),
            "open_full_s": open_time(full),
        }


def redrive(unfinished: int, workers: int = 8, delay: float = 0.0) -> dict[str, float]:
    """Open a coordinator on ``unfinished`` decided-commit transactions of 3 no-op
    participants each (sleeping ``delay`` per commit); time the start-up recovery
    (``recovery_workers=workers``)."""
    with tempfile.TemporaryDirectory(prefix="dtc-bench-redrive-") as path:
        write_log(path, 0, unfinished)
        t0 = time.perf_counter()
        coord = TransactionCoordinator(
            path,
            registry=noop_registry(delay),
            recovery_interval=None,
            recovery_workers=workers,
        )
        elapsed = time.perf_counter() - t0
        report = coord.last_recovery_report
        left = len(coord.unfinished())
        coord.close()
    if left or len(report.finished) != unfinished:
        raise RuntimeError(f"re-drive left {left} unfinished of {unfinished}")
    return {
        "unfinished": unfinished,
        "workers": workers,
        "delay_s": delay,
        "seconds": elapsed,
        "tx_per_s": unfinished / elapsed,
    }
