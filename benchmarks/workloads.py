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
from dtc_wal.errors import TransactionAborted, VoteNo
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import HEADER, encode


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


def _coordinator(log_dir: str, **options: Any) -> TransactionCoordinator:
    """A format-2 coordinator (the default for new logs) without a background loop."""
    coord = TransactionCoordinator(log_dir, recovery_interval=None, **options)
    if not isinstance(getattr(coord, "log", None), LmdbLog):
        raise RuntimeError("the benchmarks measure the format-2 coordinator (coord.log)")
    return coord


def coordinator_throughput(callers: int, seconds: float, sync: bool) -> dict[str, float]:
    """begin -> enlist 3 no-op participants -> commit, looped on ``callers`` threads."""
    with tempfile.TemporaryDirectory(prefix="dtc-bench-") as log_dir:
        coord = _coordinator(log_dir, sync=sync, max_workers=max(8, callers * 3))
        parts = [NoOp("a"), NoOp("b"), NoOp("c")]

        def once() -> None:
            txid = coord.begin_transaction()
            for p in parts:
                coord.enlist_participant(txid, p)
            coord.commit_transaction(txid)

        for _ in range(20):  # the inline tracker learns that the no-op calls are fast
            once()
        coord.flush()
        before = coord.log.info()
        result = run_threads(callers, seconds, once)
        coord.flush()
        after = coord.log.info()
        done = max(1, result["transactions"])
        result["syncs_per_tx"] = (after.syncs - before.syncs) / done
        result["records_per_tx"] = (after.records - before.records) / done
        result["map_bytes_per_tx"] = (after.map_used - before.map_used) / done
        coord.close()
    return result


def cpu_per_tx(transactions: int, rounds: int = 5) -> dict[str, float]:
    """CPU microseconds per 3-participant 2PC commit through the public API, one caller,
    sync off (``time.process_time``: user + kernel, every thread); min and median of
    ``rounds``."""
    with tempfile.TemporaryDirectory(prefix="dtc-bench-cpu-") as log_dir:
        coord = _coordinator(log_dir, sync=False)
        parts = [NoOp("a"), NoOp("b"), NoOp("c")]

        def once() -> None:
            txid = coord.begin_transaction()
            for p in parts:
                coord.enlist_participant(txid, p)
            coord.commit_transaction(txid)

        for _ in range(200):
            once()
        samples = []
        for _ in range(rounds):
            t0 = time.process_time()
            for _ in range(transactions):
                once()
            samples.append((time.process_time() - t0) / transactions * 1e6)
        coord.close()
    return {"us_per_tx": min(samples), "median_us": statistics.median(samples)}


# -- cost per path: records, bytes and syncs of each kind of transaction ---------------------


def saga_action(transaction_id: str, data: Mapping[str, Any]) -> None:
    """A saga step's action that does nothing (module level: recovery could import it)."""


def saga_compensate(transaction_id: str) -> None:
    """A saga step's compensation that does nothing."""


class OnePhaseNoOp(NoOp):
    """A no-op participant that can commit in one call when it is alone."""

    def commit_one_phase(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        pass


class NoVoter(NoOp):
    """A participant that votes no: the transaction aborts."""

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        raise VoteNo("no")


def _two_phase(coord: TransactionCoordinator) -> str:
    txid = coord.begin_transaction()
    for name in ("a", "b", "c"):
        coord.enlist_participant(txid, NoOp(name))
    coord.commit_transaction(txid)
    return txid


def _saga(coord: TransactionCoordinator) -> str:
    txid = coord.begin_transaction()
    for name in ("a", "b", "c"):
        coord.register_participant(txid, name, saga_action, saga_compensate)
    coord.commit_transaction(txid)
    return txid


def _one_phase(coord: TransactionCoordinator) -> str:
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, OnePhaseNoOp("a"))
    coord.commit_transaction(txid)
    return txid


def _abort(coord: TransactionCoordinator) -> str:
    txid = coord.begin_transaction()
    for part in (NoOp("a"), NoOp("b"), NoVoter("c")):
        coord.enlist_participant(txid, part)
    try:
        coord.commit_transaction(txid)
    except TransactionAborted:
        return txid
    raise RuntimeError("the abort path committed")


def _rollback(coord: TransactionCoordinator) -> str:
    txid = coord.begin_transaction()
    for name in ("a", "b", "c"):
        coord.enlist_participant(txid, NoOp(name))
    coord.rollback_transaction(txid)
    return txid


PATHS: dict[str, Callable[[TransactionCoordinator], str]] = {
    "2pc": _two_phase,
    "saga": _saga,
    "one-phase": _one_phase,
    "abort": _abort,
    "rollback": _rollback,
}
"""Each path, 3 no-op participants (one for one-phase): 2PC commit, a saga of 3 steps,
one-phase commit, a 2PC abort on a no vote, a rollback before commit."""


def path_costs(transactions: int = 50) -> dict[str, dict[str, float]]:
    """Records, stored bytes and synced writes per transaction of each path, one caller.

    Bytes are the framed record values the log holds (header + payload, read back and
    re-encoded with the log's own codec) and the LMDB map pages used.
    """
    out: dict[str, dict[str, float]] = {}
    for name, once in PATHS.items():
        with tempfile.TemporaryDirectory(prefix="dtc-bench-path-") as log_dir:
            coord = _coordinator(log_dir, strict=False)
            once(coord)  # warm-up (the inline tracker, the map's first pages)
            coord.flush()
            before = coord.log.info()
            txids = [once(coord) for _ in range(transactions)]
            coord.flush()
            after = coord.log.info()
            framed = 0
            for txid in txids:
                stored = coord.log.read(txid)
                if stored is None or not stored.finished:
                    raise RuntimeError(f"{name}: transaction {txid} is not finished in the log")
                framed += sum(HEADER.size + len(e[4]) for e in encode(stored.records))
            coord.close()
        out[name] = {
            "records_per_tx": (after.records - before.records) / transactions,
            "record_bytes_per_tx": framed / transactions,
            "map_bytes_per_tx": (after.map_used - before.map_used) / transactions,
            "syncs_per_tx": (after.syncs - before.syncs) / transactions,
        }
    return out


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
    Also the time the transaction spent in its durable appends (``forced_p50_s``, the p50
    of their sum per transaction): the syncs as this run's disk made them, for an ideal
    that does not depend on a separate sync anchor.
    """
    kind = ListingNoOp if listing else NoOp
    with tempfile.TemporaryDirectory(prefix="dtc-bench-lat-") as log_dir:
        coord = _coordinator(log_dir)
        log = coord.log
        append = log.append
        forced = [0.0]

        def timed_append(records: Any, *, durable: bool = True) -> None:
            if not durable:
                append(records, durable=False)
                return
            t0 = time.perf_counter()
            try:
                append(records, durable=True)
            finally:
                forced[0] += time.perf_counter() - t0

        log.append = timed_append  # type: ignore[method-assign]  # this instance only
        parts = [kind("a", delay), kind("b", delay), kind("c", delay)]
        times, in_appends = [], []
        for _ in range(samples):
            forced[0] = 0.0
            t0 = time.perf_counter()
            txid = coord.begin_transaction()
            for p in parts:
                coord.enlist_participant(txid, p)
            coord.commit_transaction(txid)
            times.append(time.perf_counter() - t0)
            in_appends.append(forced[0])
        coord.close()
    times.sort()
    return {
        "p50_s": times[len(times) // 2],
        "p99_s": times[min(len(times) - 1, int(len(times) * 0.99))],
        "forced_p50_s": statistics.median(in_appends),
    }
