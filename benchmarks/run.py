"""Run every benchmark, print one table of ratios against anchors, write JSON.

    python -m benchmarks.run [--seconds 2] [--callers 1,8,64,256] [--quick] [--cpus N]
                             [--samples N] [--transactions N] [--per-path N] [--json PATH]

The coordinator measured is the format-2 one (``TransactionCoordinator(path)`` on a new
log; ``coord.log`` is its LmdbLog). Anchors are measured in the same run on the same
machine, so the ratios mean something anywhere: no-sync (the price of durability), zope
``transaction`` in memory, a naive one-sync-per-record log, 2 round trips + the path's
forced writes (latency), an empty log (start-up).
Targets come from the performance issue; docs/performance.md records a run. Ratios marked
"info" use a second anchor that docs/performance.md explains; they have no target.
A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from . import startup, workloads

TARGETS = {
    "durable/zope @64": 0.2,
    "cpu us/tx, 1 caller, sync off (max)": 60.0,
    "p50/ideal (max)": 1.15,
    "p50/ideal lists_prepared (max)": 1.15,
    "syncs/tx @64 (max)": 0.05,
    "startup full/empty (max)": 1.5,
}
"""Issue 12's targets (durable/zope, CPU, p50/ideal) and the earlier ones still held."""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput cell")
    parser.add_argument("--callers", default="1,8,64,256")
    parser.add_argument("--quick", action="store_true", help="100k history, 2k re-drive")
    parser.add_argument("--history", type=int, help="finished transactions for start-up")
    parser.add_argument("--unfinished", type=int, help="unfinished transactions to re-drive")
    parser.add_argument("--samples", type=int, default=300, help="latency samples")
    parser.add_argument("--transactions", type=int, default=3000, help="per CPU round")
    parser.add_argument("--per-path", type=int, default=200, help="transactions per path")
    parser.add_argument(
        "--cpus", type=int, default=0, help="run on the first N CPUs only (sched_setaffinity)"
    )
    parser.add_argument("--json", dest="json_path", default="benchmarks/results/latest.json")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
    levels = [int(x) for x in args.callers.split(",")]
    history = args.history or (100_000 if args.quick else 1_000_000)
    unfinished = args.unfinished or (2_000 if args.quick else 10_000)

    out: dict[str, Any] = {
        "machine": {
            "arch": platform.machine(),
            "cpus": os.cpu_count(),
            "cpus_used": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "when": time.strftime("%Y-%m-%d %H:%M"),
        },
        "log_format": 2,
        "throughput": [],
    }
    naive = workloads.naive_throughput(args.seconds)
    out["naive"] = naive
    for callers in levels:
        row = {
            "callers": callers,
            "durable": workloads.coordinator_throughput(callers, args.seconds, sync=True),
            "no_sync": workloads.coordinator_throughput(callers, args.seconds, sync=False),
            "zope": workloads.zope_throughput(callers, args.seconds),
        }
        out["throughput"].append(row)
        _print_row(row, naive)

    out["cpu"] = workloads.cpu_per_tx(args.transactions)
    print(
        f"CPU per transaction, 1 caller, sync off: {out['cpu']['us_per_tx']:.1f} us "
        f"(min of 5 rounds; median {out['cpu']['median_us']:.1f})"
    )

    out["paths"] = workloads.path_costs(args.per_path)
    print("per transaction, 1 caller, sync on (3 participants; one-phase: 1):")
    print(f"  {'path':<10} {'records':>8} {'record bytes':>13} {'map bytes':>10} {'syncs':>6}")
    for name, cost in out["paths"].items():
        print(
            f"  {name:<10} {cost['records_per_tx']:>8.2f} {cost['record_bytes_per_tx']:>13.0f} "
            f"{cost['map_bytes_per_tx']:>10.0f} {cost['syncs_per_tx']:>6.2f}"
        )

    sync_s = workloads.sync_time()
    sync_idle_s = workloads.sync_time(idle=0.001)
    trip_s = workloads.sleep_time(0.001)
    lat = workloads.latency(args.samples)
    listing = workloads.latency(args.samples, listing=True)
    # The ideal: two round trips plus the forced writes of the path (2 for plain
    # participants, 1 with lists_prepared), each a sync after 1 ms idle, as in the run.
    ideal = 2 * trip_s + 2 * sync_idle_s
    ideal_listing = 2 * trip_s + sync_idle_s
    out["latency"] = {
        **lat,
        "sync_s": sync_s,
        "sync_after_idle_s": sync_idle_s,
        "round_trip_s": trip_s,
        "ideal_s": ideal,
        "ideal_back_to_back_s": 2 * trip_s + 2 * sync_s,
    }
    out["latency_listing"] = {
        **listing,
        "ideal_s": ideal_listing,
        "ideal_back_to_back_s": 2 * trip_s + sync_s,
    }
    print(
        f"latency @1, 3 participants sleeping 1 ms: round trip {trip_s * 1e3:.2f} ms, sync "
        f"after 1 ms idle {sync_idle_s * 1e3:.2f} ms (back to back {sync_s * 1e3:.2f} ms)"
    )
    for label, row in (
        ("plain (2 forced writes)", out["latency"]),
        ("lists_prepared (1)", out["latency_listing"]),
    ):
        print(
            f"  {label:<24} p50 {row['p50_s'] * 1e3:.2f} ms, p99 {row['p99_s'] * 1e3:.2f} ms, "
            f"ideal {row['ideal_s'] * 1e3:.2f} ms, p50/ideal {row['p50_s'] / row['ideal_s']:.2f}; "
            f"in its durable appends {row['forced_p50_s'] * 1e3:.2f} ms (p50)"
        )
    out["startup"] = startup.startup(history)
    s = out["startup"]
    print(
        f"start-up: empty log {s['open_empty_s'] * 1e3:.1f} ms, {history:,} finished "
        f"{s['open_full_s'] * 1e3:.1f} ms (ratio {s['open_full_s'] / s['open_empty_s']:.2f}; "
        f"building that log took {s['build_s']:.0f} s)"
    )
    out["redrive"] = startup.redrive(unfinished)
    out["redrive_one_worker"] = startup.redrive(unfinished, workers=1)
    # participants that take 2 ms per commit, as remote ones do: what helper threads buy
    slow = max(10, unfinished // 20)
    out["redrive_slow"] = startup.redrive(slow, delay=0.002)
    out["redrive_slow_one_worker"] = startup.redrive(slow, workers=1, delay=0.002)
    for key in ("redrive", "redrive_one_worker", "redrive_slow", "redrive_slow_one_worker"):
        r = out[key]
        print(
            f"re-drive ({r['workers']} recovery worker(s), commit "
            f"{r['delay_s'] * 1e3:g} ms): {r['unfinished']:,} unfinished in "
            f"{r['seconds']:.2f} s = {r['tx_per_s']:.0f} tx/s"
        )

    out["ratios"] = _ratios(out)
    print(f"\n{'ratio':<44} measured   target")
    for name, value in out["ratios"].items():
        target = TARGETS.get(name)
        print(f"{name:<44} {value:>8.3f}   {'' if target is None else target}")
    path = Path(args.json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwritten to {path}")
    return out


def _print_row(row: dict[str, Any], naive: dict[str, float]) -> None:
    d, n, z = row["durable"], row["no_sync"], row["zope"]
    if row["callers"] == 1 or not hasattr(_print_row, "header"):
        _print_row.header = True  # type: ignore[attr-defined]
        print(
            f"naive anchor (one synced LMDB write per record, 8 records/tx): "
            f"{naive['tx_per_s']:.0f} tx/s"
        )
        print(
            f"{'callers':>7} {'durable tx/s':>13} {'syncs/tx':>9} {'no-sync tx/s':>13} "
            f"{'zope tx/s':>10} {'dur/nosync':>11} {'dur/zope':>9} {'dur/naive':>10}"
        )
    print(
        f"{row['callers']:>7} {d['tx_per_s']:>13.0f} {d['syncs_per_tx']:>9.3f} "
        f"{n['tx_per_s']:>13.0f} {z['tx_per_s']:>10.0f} "
        f"{d['tx_per_s'] / n['tx_per_s']:>11.2f} {d['tx_per_s'] / z['tx_per_s']:>9.3f} "
        f"{d['tx_per_s'] / naive['tx_per_s']:>10.1f}",
        flush=True,
    )


def _ratios(out: dict[str, Any]) -> dict[str, float]:
    ratios: dict[str, float] = {}
    at64 = next((r for r in out["throughput"] if r["callers"] == 64), None)
    if at64 is not None:
        d = at64["durable"]
        ratios["durable/zope @64"] = d["tx_per_s"] / at64["zope"]["tx_per_s"]
        ratios["durable/no-sync @64 (info)"] = d["tx_per_s"] / at64["no_sync"]["tx_per_s"]
        ratios["group/naive @64 (info)"] = d["tx_per_s"] / out["naive"]["tx_per_s"]
        ratios["syncs/tx @64 (max)"] = d["syncs_per_tx"]
    ratios["cpu us/tx, 1 caller, sync off (max)"] = out["cpu"]["us_per_tx"]
    for key, name in (("latency", "p50/ideal"), ("latency_listing", "p50/ideal lists_prepared")):
        lat = out[key]
        ratios[f"{name} (max)"] = lat["p50_s"] / lat["ideal_s"]
        ratios[f"{name}, back-to-back sync (info)"] = lat["p50_s"] / lat["ideal_back_to_back_s"]
        # info: against 2 round trips + the durable appends as timed inside this run
        in_run = 2 * out["latency"]["round_trip_s"] + lat["forced_p50_s"]
        ratios[f"{name}, in-run appends (info)"] = lat["p50_s"] / in_run
    s = out["startup"]
    ratios["startup full/empty (max)"] = s["open_full_s"] / s["open_empty_s"]
    return ratios


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
