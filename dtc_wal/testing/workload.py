"""The process the crash harness kills: ``python -m dtc_wal.testing.workload``.

Subcommands::

    run      open a coordinator on --log (recovering what a killed predecessor left), print
             "ready", run transactions on durable participants (--state) and append
             "<outcome> <txid>" to --acks, fsynced, after each commit_transaction returned
    recover  open a coordinator (recovery runs), write the report as JSON to --report, close
             (crash points and --census work here too: kill a recovery midway)
    hold-reader  open the log read-only, start a read transaction, print "ready", sleep

Scenarios (``--scenario``): ``2pc-commit``, ``2pc-abort`` (the last participant votes no),
``2pc-incomplete`` (p1 fails commit past the retries: CommitIncompleteError),
``saga-commit``, ``saga-compensate`` (the last step's action fails), ``2pc-async``
(``commit_transaction(wait=False)``, then ``handle.wait()``), ``2pc-listing`` (participants
l0.. with ``lists_prepared``, their PreparedResource registered: no forced opening write),
``1pc`` (one participant with ``commit_one_phase``, whatever --width says: nothing forced)
and ``mixed`` (a seeded random choice per transaction). ``--crash-at NAME[:N][,...]``
(``run`` and ``recover``) arms crash points in this process (:func:`.points.arm_spec`; the
harness passes it); ``--census FILE`` instead arms every point without killing and writes
the hit counts there. The log is in format 2, the only one the coordinator runs on.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..coordinator import TransactionCoordinator
from ..errors import CommitIncompleteError, InvalidOptionError, TransactionAborted
from ..registry import ParticipantRegistry
from . import points
from .durable import LISTING_FACTORY, ONE_PHASE_FACTORY, PARTICIPANT_FACTORY, register_durable

__all__ = [
    "SCENARIOS",
    "coordinator_options",
    "main",
    "make_registry",
    "run_transaction",
    "set_lazy_delay",
]

SCENARIOS = ("2pc-commit", "2pc-abort", "saga-commit", "saga-compensate")
EXTRA_SCENARIOS = ("2pc-incomplete", "2pc-async", "2pc-listing", "1pc")
"""``2pc-incomplete``: p1's commit fails more often than the coordinator retries, so
``commit_transaction`` raises CommitIncompleteError and recovery finishes the commit.
``2pc-async``: the 2PC commit with ``wait=False`` and ``handle.wait()``. ``2pc-listing``:
the 2PC commit on participants that list what they hold prepared. ``1pc``: a one-phase
commit of a lone participant."""
MAX_WIDTH = 8


def step_names(width: int = MAX_WIDTH) -> list[str]:
    return [f"s{i}" for i in range(width)]


def listing_names(width: int = MAX_WIDTH) -> list[str]:
    """The participants of ``2pc-listing``, covered by the registered PreparedResource."""
    return [f"l{i}" for i in range(width)]


def make_registry(state_dir: str | os.PathLike[str]) -> ParticipantRegistry:
    """The registry the workload and the harness's restarts share."""
    return register_durable(
        ParticipantRegistry(),
        state_dir,
        steps=step_names(),
        one_phase_factory=ONE_PHASE_FACTORY,
        listing=listing_names(),
    )


COMMIT_ATTEMPTS = 3  # max_retries + 1


def coordinator_options(recovery_interval: float | None = None) -> dict[str, Any]:
    """Short timeouts and retries, so a test that goes wrong fails fast."""
    return {
        "prepare_timeout": 10.0,
        "phase2_timeout": 10.0,
        "max_retries": 2,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "jitter": 0.01,
        "recovery_interval": recovery_interval,
        "recovery_backoff_max": 0.5,
        "zombie_timeout": None,
    }


def run_transaction(
    coord: TransactionCoordinator,
    scenario: str,
    width: int,
    on_decided: Callable[[str], None] | None = None,
) -> tuple[str, str]:
    """Run one transaction; return ``(outcome, txid)``, outcome as in the acks file.

    ``on_decided(txid)`` is called in ``2pc-async`` when ``commit_transaction`` returned
    its handle (the commit decision is durable), before ``handle.wait()``."""
    txid = coord.begin_transaction()
    last = width - 1
    if scenario == "1pc":
        params: dict[str, Any] = {"name": "p0"}
        coord.enlist_participant(txid, ONE_PHASE_FACTORY, name="p0", params=params)
    elif scenario == "2pc-listing":
        for name in listing_names(width):
            params = {"name": name}
            coord.enlist_participant(txid, LISTING_FACTORY, name=name, params=params)
    elif scenario.startswith("2pc"):
        for i in range(width):
            params = {"name": f"p{i}"}
            if scenario == "2pc-abort" and i == last:
                # the others vote yes first, so prepare.after-first is always passed
                params.update(vote_no=True, after=[f"p{j}" for j in range(last)])
            if scenario == "2pc-incomplete" and i == 1:
                params.update(fail_commits=COMMIT_ATTEMPTS)
            coord.enlist_participant(txid, PARTICIPANT_FACTORY, name=f"p{i}", params=params)
    else:
        for i, step in enumerate(step_names(width)):
            fail = scenario == "saga-compensate" and i == last
            coord.register_participant(txid, step, params={"fail": True} if fail else None)
    try:
        if scenario == "2pc-async":
            handle = coord.commit_transaction(txid, {"scenario": scenario}, wait=False)
            if on_decided is not None:
                on_decided(txid)
            handle.wait()
        else:
            coord.commit_transaction(txid, {"scenario": scenario})
    except TransactionAborted:
        return "abort", txid
    except CommitIncompleteError:
        return "commit-incomplete", txid
    return "commit", txid


class _Acks:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def add(self, outcome: str, txid: str) -> None:
        with self._lock:
            os.write(self._fd, f"{outcome} {txid}\n".encode())
            os.fsync(self._fd)


def _arm(args: argparse.Namespace) -> None:
    for name, on_hit in args.crash_at or ():
        points.arm(name, on_hit)
    if args.census:
        for name in points.CRASH_POINTS:
            points.arm(name, 10**12)


def _write_census(args: argparse.Namespace) -> None:
    if args.census:
        Path(args.census).write_text(json.dumps(points.hits()))


def _exit_with_parent() -> None:
    """Exit when the harness that started us dies: ``--count 0`` would run forever."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(3)

    threading.Thread(target=watch, name="workload-watchdog", daemon=True).start()


def _run(args: argparse.Namespace) -> int:
    _exit_with_parent()
    _arm(args)
    if not 1 <= args.width <= MAX_WIDTH:
        raise SystemExit(f"--width must be 1..{MAX_WIDTH}")
    registry = make_registry(args.state)
    coord = TransactionCoordinator(
        args.log,
        registry=registry,
        **coordinator_options(args.recovery_interval),
    )
    if args.lazy_delay is not None:
        # how long lazy records wait for a batch to ride: a longer wait widens the window in
        # which the log does not know a 2pc-listing transaction whose participants prepared
        set_lazy_delay(coord, args.lazy_delay)
    print("ready", flush=True)
    acks = _Acks(args.acks)
    lock = threading.Lock()
    started = 0
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        nonlocal started
        rng = random.Random(seed)
        while True:
            with lock:
                if errors or (args.count and started >= args.count):
                    return
                started += 1
            if args.scenario == "mixed":
                scenario = rng.choice(SCENARIOS + EXTRA_SCENARIOS)
            else:
                scenario = args.scenario
            try:
                on_decided = functools.partial(acks.add, "decided")
                acks.add(*run_transaction(coord, scenario, args.width, on_decided))
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                raise

    threads = [
        threading.Thread(target=worker, args=(args.seed * 1000 + i,), name=f"workload-{i}")
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    coord.close()
    _write_census(args)
    if errors:
        print(f"workload failed: {errors[0]!r}", file=sys.stderr)
        return 1
    return 0


def set_lazy_delay(coord: TransactionCoordinator, seconds: float) -> None:
    """Let lazy records wait ``seconds`` for a batch to ride."""
    coord.log.lazy_delay = seconds


def _recover(args: argparse.Namespace) -> int:
    _arm(args)
    coord = TransactionCoordinator(
        args.log,
        registry=make_registry(args.state),
        **coordinator_options(),
    )
    try:
        report = coord.last_recovery_report.to_dict()
        report["unfinished"] = [v.txid for v in coord.unfinished()]
    finally:
        coord.close()
    Path(args.report).write_text(json.dumps(report))
    _write_census(args)
    return 0


def _hold_reader(args: argparse.Namespace) -> int:
    import lmdb

    env = lmdb.open(args.log, readonly=True, max_dbs=8, lock=True)
    txn = env.begin()
    txn.stat(env.open_db(b"records", txn=txn, create=False))
    print("ready", flush=True)
    time.sleep(600)
    return 0


def _crash_at(spec: str) -> list[tuple[str, int]]:
    try:
        return points.parse_spec(spec)
    except InvalidOptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


CRASH_AT_HELP = "arm crash points in this process: NAME[:N][,NAME[:N]...] (kill at the N-th hit)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dtc_wal.testing.workload")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run transactions until done or killed")
    run.add_argument("--log", required=True)
    run.add_argument("--state", required=True, help="directory of the durable participants")
    run.add_argument("--acks", required=True, help="file of acknowledged outcomes")
    run.add_argument(
        "--scenario", choices=[*SCENARIOS, *EXTRA_SCENARIOS, "mixed"], default="2pc-commit"
    )
    run.add_argument("--count", type=int, default=1, help="transactions; 0 runs until killed")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--width", type=int, default=3, help="participants per transaction")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--recovery-interval", type=float, default=None)
    run.add_argument(
        "--lazy-delay", type=float, default=None, help="seconds lazy records wait for a batch"
    )
    run.add_argument("--crash-at", type=_crash_at, help=CRASH_AT_HELP)
    run.add_argument("--census", help="arm every point without killing; write hits here")
    rec = sub.add_parser("recover", help="open (recover) and close; report as JSON")
    rec.add_argument("--log", required=True)
    rec.add_argument("--state", required=True)
    rec.add_argument("--report", required=True)
    rec.add_argument("--crash-at", type=_crash_at, help=CRASH_AT_HELP)
    rec.add_argument("--census", help="arm every point without killing; write hits here")
    hold = sub.add_parser("hold-reader", help="hold an LMDB read transaction until killed")
    hold.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    command = {"run": _run, "recover": _recover, "hold-reader": _hold_reader}[args.command]
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
