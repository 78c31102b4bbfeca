"""Run every benchmark, print one table of ratios against anchors, write JSON.

    python -m benchmarks.run [--seconds 2] [--callers 1,8,64,256] [--quick] [--cpus N]
                             [--json PATH]

Anchors are measured in the same run on the same machine, so the ratios mean something
anywhere: no-sync (the price of durability), zope ``transaction`` in memory, a naive
one-sync-per-record log, 2 round trips + one sync (latency), an empty log (start-up).
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
    "durable/no-sync @64": 0.8,
    "durable/zope @64": 0.5,
    "group/naive @64": 10.0,
    "syncs/tx @64 (max)": 0.05,
    "p50/ideal (max)": 1.15,
    "p50/ideal lists_prepared (max)": 1.15,
    "startup full/empty (max)": 1.5,
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput cell")
    parser.add_argument("--callers", default="1,8,64,256")
    parser.add_argument("--quick", action="store_true", help="100k history, 2k re-drive")
    parser.add_argument("--history", type=int, help="finished transactions for start-up")
    parser.add_argument("--unfinished", type=int, help="unfinished transactions to re-drive")
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
            "writer_thread": workloads.coordinator_throughput(
                callers, args.seconds, sync=True, writer="thread"
            ),
        }
        out["throughput"].append(row)
        _print_row(row, naive)

    sync_s = workloads.sync_time()
    sync_idle_s = workloads.sync_time(idle=0.001)
    trip_s = workloads.sleep_time(0.001)
    lat = workloads.latency(300)
    listing = workloads.latency(300, listing=True)
    ideal = 2 * trip_s + sync_s
    out["latency"] = {
        **lat,
        "sync_s": sync_s,
        "sync_after_idle_s": sync_idle_s,
        "round_trip_s": trip_s,
        "ideal_s": ideal,
        "ideal_idle_sync_s": 2 * trip_s + sync_idle_s,
    }
    out["latency_listing"] = listing
    print(
        f"latency @1, 3 participants sleeping 1 ms: ideal 2 x {trip_s * 1e3:.2f} ms + sync "
        f"{sync_s * 1e3:.2f} ms = {ideal * 1e3:.2f} ms (a sync after 1 ms idle: "
        f"{sync_idle_s * 1e3:.2f} ms)"
    )
    for label, row in (("plain (2 forced writes)", lat), ("lists_prepared (1)", listing)):
        print(
            f"  {label:<24} p50 {row['p50_s'] * 1e3:.2f} ms, p99 {row['p99_s'] * 1e3:.2f} ms, "
            f"p50/ideal {row['p50_s'] / ideal:.2f}"
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
            f"{'zope tx/s':>10} {'dur/nosync':>11} {'dur/zope':>9} {'dur/naive':>10} "
            f"{'thread-writer tx/s':>19}"
        )
    print(
        f"{row['callers']:>7} {d['tx_per_s']:>13.0f} {d['syncs_per_tx']:>9.3f} "
        f"{n['tx_per_s']:>13.0f} {z['tx_per_s']:>10.0f} "
        f"{d['tx_per_s'] / n['tx_per_s']:>11.2f} {d['tx_per_s'] / z['tx_per_s']:>9.2f} "
        f"{d['tx_per_s'] / naive['tx_per_s']:>10.1f} "
        f"{row['writer_thread']['tx_per_s']:>19.0f}",
        flush=True,
    )


def _ratios(out: dict[str, Any]) -> dict[str, float]:
    ratios: dict[str, float] = {}
    at64 = next((r for r in out["throughput"] if r["callers"] == 64), None)
    if at64 is not None:
        d = at64["durable"]
        ratios["durable/no-sync @64"] = d["tx_per_s"] / at64["no_sync"]["tx_per_s"]
        ratios["durable/zope @64"] = d["tx_per_s"] / at64["zope"]["tx_per_s"]
        ratios["group/naive @64"] = d["tx_per_s"] / out["naive"]["tx_per_s"]
        # info: the naive log writing the records this coordinator writes (one sync each)
        naive_same = 1 / (out["naive"]["sync_s"] * d["records_per_tx"])
        ratios["group/naive @64, same records (info)"] = d["tx_per_s"] / naive_same
        ratios["syncs/tx @64 (max)"] = d["syncs_per_tx"]
    lat = out["latency"]
    ratios["p50/ideal (max)"] = lat["p50_s"] / lat["ideal_s"]
    ratios["p50/ideal lists_prepared (max)"] = out["latency_listing"]["p50_s"] / lat["ideal_s"]
    idle = lat["ideal_idle_sync_s"]
    ratios["p50/ideal, idle sync (info)"] = lat["p50_s"] / idle
    ratios["p50/ideal lists_prepared, idle sync (info)"] = out["latency_listing"]["p50_s"] / idle
    s = out["startup"]
    ratios["startup full/empty (max)"] = s["open_full_s"] / s["open_empty_s"]
    return ratios


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
