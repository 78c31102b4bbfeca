"""Workloads and anchors for benchmarks/run.py. Every function returns plain numbers."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import lmdb

from dtc_wal import ParticipantRegistry, TransactionCoordinator


class NoOp:
    """A participant that does nothing (the coordinator's own cost is what is measured)."""

    def __init__(self, name: str = "noop", delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)

    def commit(self, transaction_id: str) -> None:
        if self.delay:
            time.sleep(self.delay)

    def rollback(self, transaction_id: str) -> None:
        pass


def noop_registry(delay: float = 0.0) -> ParticipantRegistry:
    """Factory "noop": participants that do nothing, or sleep ``delay`` per commit (a
    remote participant's round trip)."""
    registry = ParticipantRegistry()
    registry.register("noop", lambda **_: NoOp(delay=delay))
    return registry


def run_threads(callers: int, seconds: float, once: Callable[[], None]) -> dict[str, float]:
    """Call ``once`` in a loop on ``callers`` threads for ``seconds``; count the calls."""
    counts = [0] * callers
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        n = 0
        try:
            while not stop.is_set():
                once()
                n += 1
        except BaseException as exc:  # a benchmark that fails must say so
            errors.append(exc)
        counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(callers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"benchmark worker failed: {errors[0]!r}") from errors[0]
    total = sum(counts)
    return {"callers": callers, "transactions": total, "tx_per_s": total / elapsed}


def coordinator_throughput(
    callers: int, seconds: float, sync: bool, writer: str = "caller"
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="dtc-bench-") as log_dir:
        coord = TransactionCoordinator(
            log_dir,
            log_format=1,  # the old core's numbers (reads coord.wal)
            sync=sync,
            recovery_interval=None,
            max_workers=max(8, callers * 3),
            log_writer=writer,
        )
        parts = [NoOp("a"), NoOp("b"), NoOp("c")]

        def once() -> None:
            txid = coord.begin_transaction()
            for p in parts:
                coord.enlist_participant(txid, p)
            coord.commit_transaction(txid)

        before, records = coord.wal.syncs, coord.wal.records_written
        result = run_threads(callers, seconds, once)
        coord.flush()
        done = max(1, result["transactions"])
        result["syncs_per_tx"] = (coord.wal.syncs - before) / done
        result["records_per_tx"] = (coord.wal.records_written - records) / done
        coord.close()
    return result


class _ZopeDM:
    """A no-op zope ``IDataManager``."""

    def __init__(self, tm: Any, key: str) -> None:
        self.transaction_manager = tm
        self.key = key

    def abort(self, txn: Any) -> None: ...
    def tpc_begin(self, txn: Any) -> None: ...
    def commit(self, txn: Any) -> None: ...
    def tpc_vote(self, txn: Any) -> None: ...
    def tpc_finish(self, txn: Any) -> None: ...
    def tpc_abort(self, txn: Any) -> None: ...

    def sortKey(self) -> str:
        return self.key


def zope_throughput(callers: int, seconds: float) -> dict[str, float]:
    """zope ``transaction`` (in memory, not durable) with three no-op data managers."""
    import transaction  # the test extra installs it

    local = threading.local()

    def once() -> None:
        tm = getattr(local, "tm", None)
        if tm is None:
            tm = local.tm = transaction.TransactionManager()
        txn = tm.begin()
        for key in ("a", "b", "c"):
            txn.join(_ZopeDM(tm, key))
        tm.commit()

    return run_threads(callers, seconds, once)


def naive_throughput(seconds: float, records_per_tx: int = 8) -> dict[str, float]:
    """One synced LMDB write transaction per log record: no group commit at all."""
    with tempfile.TemporaryDirectory(prefix="dtc-bench-naive-") as log_dir:
        env = lmdb.open(log_dir, map_size=1 << 30, max_dbs=2, sync=True)
        db = env.open_db(b"records")
        lsn = 0
        value = b"\x01" + b"x" * 60
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            lsn += 1
            with env.begin(write=True) as txn:
                txn.put(lsn.to_bytes(8, "big"), value, db=db, append=True)
        elapsed = time.perf_counter() - start
        env.close()
    return {"tx_per_s": lsn / records_per_tx / elapsed, "sync_s": elapsed / lsn}


def sync_time(samples: int = 200, idle: float = 0.0) -> float:
    """Median seconds of one small synced LMDB write transaction on this disk.

    With ``idle``, each write follows that many seconds of sleep, as the forced writes of
    the latency benchmark do (a sync after an idle gap costs more than back-to-back ones).
    """
    with tempfile.TemporaryDirectory(prefix="dtc-bench-sync-") as log_dir:
        env = lmdb.open(log_dir, map_size=1 << 26, max_dbs=2, sync=True)
        db = env.open_db(b"records")
        times = []
        for i in range(samples):
            if idle:
                time.sleep(idle)
            t0 = time.perf_counter()
            with env.begin(write=True) as txn:
                txn.put(i.to_bytes(8, "big"), b"x" * 200, db=db, append=True)
            times.append(time.perf_counter() - t0)
        env.close()
    return statistics.median(times)


def sleep_time(seconds: float, samples: int = 200) -> float:
    """Median real duration of ``time.sleep(seconds)`` (the round trip the ideal uses)."""
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        time.sleep(seconds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class ListingNoOp(NoOp):
    """A no-op participant whose prepared work a resource could list (XA recover)."""

    lists_prepared = True


def latency(samples: int, delay: float = 0.001, listing: bool = False) -> dict[str, float]:
    """p50/p99 of one caller committing with three participants sleeping ``delay`` per call.

    With ``listing`` the participants declare ``lists_prepared`` (one forced write, not two).
    """
    kind = ListingNoOp if listing else NoOp
    with tempfile.TemporaryDirectory(prefix="dtc-bench-lat-") as log_dir:
        coord = TransactionCoordinator(log_dir, log_format=1, recovery_interval=None)
        parts = [kind("a", delay), kind("b", delay), kind("c", delay)]
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            txid = coord.begin_transaction()
            for p in parts:
                coord.enlist_participant(txid, p)
            coord.commit_transaction(txid)
            times.append(time.perf_counter() - t0)
        coord.close()
    times.sort()
    return {
        "p50_s": times[len(times) // 2],
        "p99_s": times[min(len(times) - 1, int(len(times) * 0.99))],
    }
