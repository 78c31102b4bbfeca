"""Log format 2 (dtc_wal.log.lmdb) alone: its CPU, durable throughput and bytes.

    python -m benchmarks.log2 [--seconds 2] [--callers 1,64] [--transactions 5000]
                              [--repeat 3] [--cpus N] [--profile] [--json PATH]

Each transaction is shaped like a 3-participant two-phase commit as the protocol appends
it: Opened (3 members, durable), Decided (durable) and Ended (lazy). Measured: CPU per
transaction at one caller with sync off (the log's own cost, user and kernel), durable
transactions per second and syncs per transaction at each caller count, log bytes per
transaction, and the payload as arrays against the same records as maps. (Format 1, 12
records per transaction, is gone; docs/performance.md keeps its last numbers.) A
benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgpack

from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.layout import DECODERS, ENCODERS
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

from .workloads import run_threads

MEMBERS = tuple(MemberSpec(name, "noop", None) for name in ("a", "b", "c"))
VOTES = ((0, Vote.YES), (1, Vote.YES), (2, Vote.YES))
ACKS = ((0, MemberState.COMMITTED), (1, MemberState.COMMITTED), (2, MemberState.COMMITTED))


class Log(Protocol):
    """One log under test: ``once(txid)`` appends one transaction's records."""

    def once(self, txid: str) -> None: ...
    def syncs(self) -> int: ...
    def used_bytes(self) -> int: ...
    def close(self) -> None: ...


class Format2:
    records_per_tx = 3

    def __init__(self, path: str, sync: bool) -> None:
        self.log = LmdbLog(path, sync=sync)

    def once(self, txid: str) -> None:
        t = time.time()
        self.log.append([Opened(txid, t, Mode.TWO_PHASE, MEMBERS)])
        self.log.append([Decided(txid, t, Outcome.COMMIT, VOTES)])
        self.log.append([Ended(txid, t, ACKS)], durable=False)

    def syncs(self) -> int:
        return self.log.info().syncs

    def used_bytes(self) -> int:
        return self.log.info().map_used

    def close(self) -> None:
        self.log.close()


FORMATS: dict[str, Callable[[str, bool], Log]] = {"format 2": Format2}


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # microsecond resolution, all threads
    return usage.ru_utime, usage.ru_stime


def cpu_per_tx(kind: str, transactions: int, rounds: int = 5) -> dict[str, float]:
    """CPU microseconds per transaction at one caller with sync off (min over rounds),
    split into user and kernel time; txids are made beforehand (not the log's cost)."""
    with tempfile.TemporaryDirectory(prefix="dtc-bench-log2-") as path:
        log = FORMATS[kind](path, False)
        txids = [str(uuid.uuid4()) for _ in range((rounds + 1) * transactions)]
        for txid in txids[:transactions]:  # warm-up: page cache, allocator, map
            log.once(txid)
        samples = []
        for r in range(1, rounds + 1):
            user, kernel = _cpu()
            for txid in txids[r * transactions : (r + 1) * transactions]:
                log.once(txid)
            user_after, kernel_after = _cpu()
            samples.append(
                (
                    (user_after - user) / transactions * 1e6,
                    (kernel_after - kernel) / transactions * 1e6,
                )
            )
        log.close()
    best = min(samples, key=sum)
    return {
        "us_per_tx": sum(best),
        "user_us": best[0],
        "kernel_us": best[1],
        "median_us": statistics.median(sum(s) for s in samples),
    }


def durable_throughput(kind: str, callers: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="dtc-bench-log2-") as path:
        log = FORMATS[kind](path, True)
        before = log.syncs()
        result = run_threads(callers, seconds, lambda: log.once(str(uuid.uuid4())))
        done = max(1, int(result["transactions"]))
        result["syncs_per_tx"] = (log.syncs() - before) / done
        result["bytes_per_tx"] = log.used_bytes() / done
        log.close()
    return result


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput (its own syncs and bytes alongside)."""
    return sorted(runs, key=lambda r: r["tx_per_s"])[len(runs) // 2]


# -- the payload: arrays against maps ---------------------------------------------------------

_MAP_KEYS = {  # one-letter keys, format 1's style, for the same positional fields
    Opened: ("k", "t", "x", "m", "p", "d"),
    Decided: ("k", "t", "o", "v", "r", "w"),
    Ended: ("k", "t", "a"),
}


def payload_layouts(samples: int = 20_000) -> dict[str, float]:
    """Bytes and microseconds (encode + decode) of one transaction's three payloads."""
    txid = str(uuid.uuid4())
    records: list[Record] = [
        Opened(txid, time.time(), Mode.TWO_PHASE, MEMBERS),
        Decided(txid, time.time(), Outcome.COMMIT, VOTES),
        Ended(txid, time.time(), ACKS),
    ]
    packer = msgpack.Packer(use_bin_type=True)
    # The same positional fields, packed as an array or as a map with one-letter keys.
    fields = [msgpack.unpackb(ENCODERS[type(r)](r, packer.pack)) for r in records]
    keys = [_MAP_KEYS[type(r)] for r in records]

    def arrays() -> None:
        for values in fields:
            body = msgpack.unpackb(packer.pack(values), use_list=True)
            DECODERS[body[0]](body, txid)

    def maps() -> None:
        for values, names in zip(fields, keys, strict=True):
            packed = packer.pack(dict(zip(names, values, strict=True)))
            body = msgpack.unpackb(packed, use_list=True, strict_map_key=False)
            positional = [body[k] for k in names]
            DECODERS[positional[0]](positional, txid)

    size_array = sum(len(packer.pack(values)) for values in fields)
    size_map = sum(
        len(packer.pack(dict(zip(names, values, strict=True))))
        for values, names in zip(fields, keys, strict=True)
    )
    return {
        "array_bytes": size_array,
        "map_bytes": size_map,
        "array_us": min(timeit.repeat(arrays, number=samples, repeat=3)) / samples * 1e6,
        "map_us": min(timeit.repeat(maps, number=samples, repeat=3)) / samples * 1e6,
    }


def profile(transactions: int, top: int = 15) -> str:
    """cProfile of format 2 at one caller, sync off: the functions that cost the most."""
    with tempfile.TemporaryDirectory(prefix="dtc-bench-log2-") as path:
        log = Format2(path, False)
        txids = [str(uuid.uuid4()) for _ in range(transactions)]
        profiler = cProfile.Profile()
        profiler.enable()
        for txid in txids:
            log.once(txid)
        profiler.disable()
        log.close()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput cell")
    parser.add_argument("--callers", default="1,64")
    parser.add_argument("--transactions", type=int, default=5000, help="per CPU round")
    parser.add_argument("--repeat", type=int, default=3, help="durable runs per cell")
    parser.add_argument(
        "--cpus", type=int, default=0, help="run on the first N CPUs only (sched_setaffinity)"
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of format 2")
    parser.add_argument("--json", dest="json_path", help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
    out: dict[str, Any] = {
        "cpus_used": len(os.sched_getaffinity(0)),
        "cpu": {},
        "durable": [],
        "payload": payload_layouts(),
    }

    print(f"On {out['cpus_used']} CPU(s).")
    print("CPU per transaction, 1 caller, sync off (min of 5 rounds; user + kernel):")
    for kind in FORMATS:
        cpu = out["cpu"][kind] = cpu_per_tx(kind, args.transactions)
        print(
            f"  {kind}: {cpu['us_per_tx']:7.1f} us  (user {cpu['user_us']:.1f}, kernel "
            f"{cpu['kernel_us']:.1f}; median {cpu['median_us']:.1f})"
        )
    print(f"Durable (synced) transactions per second (median of {args.repeat}):")
    print("  callers       tx/s  syncs/tx  bytes/tx")
    for callers in (int(c) for c in args.callers.split(",")):
        # Several runs, the median kept: the disk's sync time drifts.
        runs = [durable_throughput("format 2", callers, args.seconds) for _ in range(args.repeat)]
        two = _median(runs)
        out["durable"].append({"callers": callers, "format 2": two})
        print(
            f"  {callers:7d}  {two['tx_per_s']:9,.0f}  {two['syncs_per_tx']:8.3f}  "
            f"{two['bytes_per_tx']:8,.0f}"
        )
    p = out["payload"]
    print(
        f"Payload of one transaction (3 records): arrays {p['array_bytes']} bytes, "
        f"{p['array_us']:.1f} us to encode + decode; maps {p['map_bytes']} bytes, "
        f"{p['map_us']:.1f} us ({1 - p['array_bytes'] / p['map_bytes']:.0%} smaller, "
        f"{p['map_us'] / p['array_us']:.2f}x faster as arrays)"
    )
    if args.profile:
        out["profile"] = profile(args.transactions)
        print(out["profile"])
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
