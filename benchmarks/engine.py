"""The driver engine (dtc_wal.drivers.Engine on LmdbLog) against issue 12's targets.

python -m benchmarks.engine [--seconds S] [--samples N] [--transactions N]

Prints same-run numbers and ratios (no timed assertions anywhere):
* durable tx/s at 1 and 64 callers, 3 no-op participants, beside zope ``transaction`` in
  memory at 64 threads and TransactionCoordinator (the format-2 facade) at 64 callers
  (target: engine/zope >= 0.2 at 64);
* CPU microseconds per transaction, one caller, sync off (target <= 60 us);
* p50 latency with three 1 ms participants against the ideal: two round trips plus the
  forced writes of the path (2; 1 with lists_prepared), at the sync time measured in the
  same run (target p50/ideal <= 1.15).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from dtc_wal.drivers import Engine
from dtc_wal.log.lmdb import LmdbLog

from .workloads import (
    ListingNoOp,
    NoOp,
    coordinator_throughput,
    run_threads,
    sleep_time,
    sync_time,
    zope_throughput,
)


def _engine(log_dir: str, sync: bool) -> tuple[LmdbLog, Engine]:
    log = LmdbLog(log_dir, sync=sync)
    return log, Engine(log)


def engine_throughput(callers: int, seconds: float, sync: bool = True) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="dtc-bench-engine-") as log_dir:
        log, engine = _engine(log_dir, sync)
        parts = [NoOp("a"), NoOp("b"), NoOp("c")]

        def once() -> None:
            txid = engine.begin()
            for p in parts:
                engine.enlist(txid, p)
            engine.commit(txid)

        for _ in range(20):  # the inline tracker learns the no-op calls are fast
            once()
        before = log.syncs
        result = run_threads(callers, seconds, once)
        log.flush()
        result["syncs_per_tx"] = (log.syncs - before) / max(1, result["transactions"])
        engine.close()
        log.close()
    return result


def cpu_per_tx(transactions: int) -> float:
    """CPU microseconds per 3-participant commit, one caller, sync off."""
    with tempfile.TemporaryDirectory(prefix="dtc-bench-engine-cpu-") as log_dir:
        log, engine = _engine(log_dir, sync=False)
        parts = [NoOp("a"), NoOp("b"), NoOp("c")]

        def once() -> None:
            txid = engine.begin()
            for p in parts:
                engine.enlist(txid, p)
            engine.commit(txid)

        for _ in range(200):
            once()
        best = float("inf")
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(transactions):
                once()
            best = min(best, (time.process_time() - t0) / transactions)
        engine.close()
        log.close()
    return best * 1e6


def latency(samples: int, delay: float = 0.001, listing: bool = False) -> float:
    """p50 seconds of one caller committing with three participants sleeping ``delay``."""
    kind = ListingNoOp if listing else NoOp
    with tempfile.TemporaryDirectory(prefix="dtc-bench-engine-lat-") as log_dir:
        log, engine = _engine(log_dir, sync=True)
        parts = [kind("a", delay), kind("b", delay), kind("c", delay)]
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            txid = engine.begin()
            for p in parts:
                engine.enlist(txid, p)
            engine.commit(txid)
            times.append(time.perf_counter() - t0)
        engine.close()
        log.close()
    times.sort()
    return times[len(times) // 2]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--transactions", type=int, default=3000)
    args = parser.parse_args(argv)
    s = args.seconds
    out: dict[str, Any] = {}
    out["engine_1"] = engine_throughput(1, s)["tx_per_s"]
    out["engine_64"] = engine_throughput(64, s)["tx_per_s"]
    out["zope_64"] = zope_throughput(64, s)["tx_per_s"]
    out["coordinator_64"] = coordinator_throughput(64, s, sync=True)["tx_per_s"]
    out["ratio_zope_64"] = out["engine_64"] / out["zope_64"]
    print(f"durable tx/s, 3 no-op participants: engine 1 caller {out['engine_1']:,.0f}")
    print(
        f"  64 callers: engine {out['engine_64']:,.0f}, TransactionCoordinator "
        f"{out['coordinator_64']:,.0f}, zope in memory {out['zope_64']:,.0f}"
    )
    print(f"  engine / zope at 64: {out['ratio_zope_64']:.3f} (target >= 0.2)")
    out["cpu_us"] = cpu_per_tx(args.transactions)
    print(f"CPU per transaction, 1 caller, sync off: {out['cpu_us']:.1f} us (target <= 60)")
    rt = sleep_time(0.001, samples=min(args.samples, 200))
    sync = sync_time(samples=min(args.samples, 200), idle=0.001)
    for label, listing, forced in (("2pc", False, 2), ("lists_prepared", True, 1)):
        p50 = latency(args.samples, listing=listing)
        ideal = 2 * rt + forced * sync
        out[f"p50_{label}"] = p50
        out[f"ideal_{label}"] = ideal
        out[f"p50_ratio_{label}"] = p50 / ideal
        print(
            f"p50 {label}: {p50 * 1e3:.3f} ms, ideal {ideal * 1e3:.3f} ms (2 x {rt * 1e3:.3f} "
            f"ms + {forced} x {sync * 1e3:.3f} ms sync): {p50 / ideal:.2f} (target <= 1.15)"
        )
    return out


if __name__ == "__main__":
    main()
