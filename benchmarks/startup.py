"""Start-up cost against history size, and the re-drive rate of unfinished transactions.

Logs are written in bulk straight through the log's own codec and tables (the same records
a coordinator writes for a 3-participant 2PC commit), far faster than running the
coordinator a million times.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator

from dtc_wal import TransactionCoordinator
from dtc_wal.records import LogRecord, encode_record, lsn_key
from dtc_wal.states import Mode, Outcome, RecordType
from dtc_wal.wal.store import LogStore, put_summary

from .workloads import noop_registry

NAMES = ("a", "b", "c")


def _transaction(txid: str, at: float, finished: bool) -> Iterator[LogRecord]:
    yield LogRecord(RecordType.BEGUN, txid, at)
    for i, name in enumerate(NAMES):
        yield LogRecord(
            RecordType.ENLISTED,
            txid,
            at,
            participant=name,
            factory="noop",
            order=i,
            mode=Mode.TWO_PHASE,
        )
    for name in NAMES:
        yield LogRecord(RecordType.PREPARED, txid, at, participant=name)
    yield LogRecord(RecordType.DECIDED_COMMIT, txid, at)
    if finished:
        for name in NAMES:
            yield LogRecord(
                RecordType.ACKNOWLEDGED, txid, at, participant=name, outcome=Outcome.COMMIT
            )
        yield LogRecord(RecordType.COMPLETED, txid, at)


def write_log(path: str, finished: int, unfinished: int, batch: int = 5000) -> None:
    store = LogStore(path, map_size=1 << 30, max_map_size=1 << 36, sync=False)
    lsn = store.last_lsn
    at = time.time()
    plan = [True] * finished + [False] * unfinished
    for start in range(0, len(plan), batch):
        chunk = plan[start : start + batch]

        def body(txn: object, chunk: list[bool] = chunk, first: int = lsn) -> int:
            n = first
            cursor = txn.cursor(db=store.records)  # type: ignore[attr-defined]
            for done in chunk:
                txid = str(uuid.uuid4())
                lsns = []
                for record in _transaction(txid, at, done):
                    n += 1
                    cursor.put(lsn_key(n), encode_record(record), append=True)
                    lsns.append(n)
                state = "committed" if done else "decided-commit"
                pstate = "committed" if done else "prepared"
                put_summary(
                    txn,
                    store,
                    txid,
                    {  # type: ignore[arg-type]
                        "s": state,
                        "m": "2pc",
                        "c": at,
                        "u": at,
                        "l": lsns,
                        "p": dict.fromkeys(NAMES, pstate),
                    },
                )
            txn.put(b"last-lsn", lsn_key(n), db=store.meta)  # type: ignore[attr-defined]
            return n

        lsn = store.write(body)  # type: ignore[arg-type]
    store.env.sync(True)
    store.close()


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
