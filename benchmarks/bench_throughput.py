"""Durable throughput and syncs per transaction at several concurrency levels.

    python benchmarks/bench_throughput.py [--seconds 2] [--callers 1,8,64] [--json out.json]

Each row runs N caller threads, each looping begin -> enlist 3 no-op participants ->
commit, for a fixed time on a fresh log, fully synced. The same run measures anchors so the
printed ratios compare like with like on this machine:

* ``no-sync``: the same coordinator with ``sync=False`` (the cost of durability);
* ``naive``: one synced LMDB write transaction per log record, from one thread (what group
  commit saves: ~8 records per transaction would cost 8 syncs each).

A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmdb

from dtc_wal import TransactionCoordinator


class NoOp:
    def __init__(self, name: str) -> None:
        self.name = name

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        pass

    def commit(self, transaction_id: str) -> None:
        pass

    def rollback(self, transaction_id: str) -> None:
        pass


def run_coordinator(callers: int, seconds: float, sync: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="dtc-bench-") as log_dir:
        coord = TransactionCoordinator(
            log_dir, sync=sync, recovery_interval=None, max_workers=max(8, callers * 3)
        )
        parts = [NoOp("a"), NoOp("b"), NoOp("c")]
        counts = [0] * callers
        stop = threading.Event()

        def worker(i: int) -> None:
            n = 0
            while not stop.is_set():
                txid = coord.begin_transaction()
                for p in parts:
                    coord.enlist_participant(txid, p)
                coord.commit_transaction(txid)
                n += 1
            counts[i] = n

        syncs_before = coord.wal.syncs
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(callers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        coord.flush()
        syncs = coord.wal.syncs - syncs_before
        coord.close()
    total = sum(counts)
    return {
        "callers": callers,
        "transactions": total,
        "tx_per_s": total / elapsed,
        "syncs_per_tx": syncs / total if total else float("nan"),
    }


def run_naive(seconds: float, records_per_tx: int = 8) -> dict[str, float]:
    """One synced LMDB write transaction per record (no group commit)."""
    with tempfile.TemporaryDirectory(prefix="dtc-bench-naive-") as log_dir:
        env = lmdb.open(log_dir, map_size=1 << 30, max_dbs=2, sync=True)
        db = env.open_db(b"records")
        lsn, writes = 0, 0
        value = b"\x01" + b"x" * 60
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            lsn += 1
            with env.begin(write=True) as txn:
                txn.put(lsn.to_bytes(8, "big"), value, db=db, append=True)
            writes += 1
        elapsed = time.perf_counter() - start
        env.close()
    tx = writes / records_per_tx
    return {"transactions": tx, "tx_per_s": tx / elapsed, "syncs_per_tx": float(records_per_tx)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--callers", default="1,8,64")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    levels = [int(x) for x in args.callers.split(",")]

    naive = run_naive(args.seconds)
    rows = []
    for callers in levels:
        durable = run_coordinator(callers, args.seconds, sync=True)
        nosync = run_coordinator(callers, args.seconds, sync=False)
        rows.append({"durable": durable, "no_sync": nosync})

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpu, Python {platform.python_version()}"
    )
    print(
        f"naive anchor (1 synced LMDB txn per record, 8 records/tx): {naive['tx_per_s']:.0f} tx/s"
    )
    header = (
        f"{'callers':>7} {'durable tx/s':>13} {'syncs/tx':>9} {'no-sync tx/s':>13} "
        f"{'durable/no-sync':>16} {'durable/naive':>14}"
    )
    print(header)
    for row in rows:
        d, n = row["durable"], row["no_sync"]
        print(
            f"{d['callers']:>7} {d['tx_per_s']:>13.0f} {d['syncs_per_tx']:>9.3f} "
            f"{n['tx_per_s']:>13.0f} {d['tx_per_s'] / n['tx_per_s']:>16.2f} "
            f"{d['tx_per_s'] / naive['tx_per_s']:>14.1f}"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"naive": naive, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
