"""Concurrency stress: many threads running mixed transactions on one coordinator.

Every thread begins, joins and finishes its own transactions against shared systems with
fixed behaviours (some vote no, some fail transiently, some fail commit or compensation
for longer than the retries last), then the same invariants as the stateful machine are
checked: each outcome is the one :class:`~.model.Model` predicts from the behaviours, the
systems agree with the log and with what each caller was told, every transaction's records
follow the transition table, and after recovery nothing is left unfinished.

Runs in-process (tests/stateful/test_stress.py) and as a script, so that a test can run it
under ``python -X dev -W error::ResourceWarning``::

    cd tests && python -m stateful.stress --threads 8 --per-thread 50 /tmp/some-dir
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import logging
import os
import random
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from dtc_wal import (
    CommitIncompleteError,
    ManualClock,
    TransactionAborted,
    TransactionCoordinator,
)

from .checks import closed_log_problems, history_problems, world_problems
from .model import MAX_RETRIES, Model, Words
from .world import TWO_PHASE_FACTORY, Behaviour, TwoPhaseProxy, World, step_factory

#: The systems every stress transaction draws from, by behaviour.
BEHAVIOURS = (
    Behaviour("ok"),
    Behaviour("ok"),
    Behaviour("ok"),
    Behaviour("vote-no"),
    Behaviour("transient", 1),  # retried, then yes
    Behaviour("transient", MAX_RETRIES + 1),  # retries run out: no
    Behaviour("phase2-fail", 1),  # commit/compensation retried, then acknowledged
    Behaviour("phase2-fail", MAX_RETRIES + 1),  # left to recovery
)


@dataclasses.dataclass
class Done:
    """One transaction as its caller saw it."""

    txid: str
    saga: bool
    members: list[tuple[str, str, bool]]  # (member name, system, recoverable)
    how: str  # "commit" or "rollback"
    got: tuple[str, set[str]] | None  # ("ok" | "incomplete" | "aborted", pending)
    acked: bool = False  # the caller was told the outcome is commit


def _one(coord: TransactionCoordinator, world: World, rng: random.Random, names: list[str]) -> Done:
    saga = rng.random() < 0.4
    chosen = rng.sample(names, rng.randint(1, 3))
    txid = coord.begin_transaction()
    members = []
    for system in chosen:
        recoverable = rng.random() < 0.7
        target = world.systems[system]
        if saga and recoverable:
            coord.register_participant(txid, step_factory(system))
            members.append((step_factory(system), system, True))
        elif saga:
            coord.register_participant(txid, f"fn:{system}", target.action, target.compensate)
            members.append((f"fn:{system}", system, False))
        elif recoverable:
            coord.enlist_participant(
                txid, TWO_PHASE_FACTORY, name=system, params={"system": system}
            )
            members.append((system, system, True))
        else:
            coord.enlist_participant(txid, TwoPhaseProxy(target), name=system)
            members.append((system, system, False))
    if rng.random() < 0.1:
        coord.rollback_transaction(txid)
        return Done(txid, saga, members, "rollback", None)
    payload: dict[str, Any] = {"n": rng.randint(0, 1000)}
    try:
        coord.commit_transaction(txid, payload)
        got: tuple[str, set[str]] = ("ok", set())
    except CommitIncompleteError as exc:
        got = ("incomplete", set(exc.pending))
    except TransactionAborted as exc:
        got = ("aborted", set(exc.pending))
    return Done(txid, saga, members, "commit", got)


def run_stress(
    path: str | Path,
    threads: int = 32,
    per_thread: int = 500,
    seed: int = 0,
) -> collections.Counter[str]:
    """Run the stress workload on a new log at ``path``; return how the
    transactions ended (``ok``, ``incomplete``, ``aborted``, ``rollback``, and
    ``saga-compensated``).

    Raises AssertionError listing every broken invariant.
    """
    world = World()
    for behaviour in BEHAVIOURS:
        world.add(behaviour)
    names = list(world.systems)
    coord = TransactionCoordinator(
        path,
        registry=world.registry(),
        clock=ManualClock(),
        recovery_interval=None,
        max_retries=MAX_RETRIES,
        prepare_timeout=60.0,
        phase2_timeout=60.0,
    )
    results: list[list[Done]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        rng = random.Random(seed * 100_003 + i)
        try:
            for _ in range(per_thread):
                results[i].append(_one(coord, world, rng, names))
        except BaseException as exc:  # reported below, with the thread's number
            errors.append(exc)
            raise

    workers = [threading.Thread(target=work, args=(i,), name=f"stress-{i}") for i in range(threads)]
    try:
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        assert not errors, f"caller threads raised: {errors!r}"
        done = [d for per in results for d in per]
        model = Model(world)
        problems = _outcome_problems(model, done)
        coord.recover_now()  # finishes what failed commit/compensation for too long
        model.recover()
        unfinished = model.unfinished_txids()
        if unfinished:
            problems.append(f"the model leaves unfinished after one pass: {unfinished}")
        problems += [f"(after recovery) {p}" for p in model.countdown_mismatches()]
        problems += _state_problems(coord, world, done, model.w)
    finally:
        coord.close()
    problems += closed_log_problems(path)
    assert not problems, "\n".join(problems[:50])
    ends = collections.Counter(d.got[0] if d.got else "rollback" for d in done)
    ends["saga-compensated"] = sum(
        1 for d in done if d.saga and d.got and d.got[0] == "aborted" and len(d.members) > 1
    )
    return ends


def _outcome_problems(model: Model, done: list[Done]) -> list[str]:
    """Each caller got the result the model predicts from the behaviours."""
    problems = []
    for d in done:
        tx = model.begin(d.txid, 0.0)
        for name, system, recoverable in d.members:
            tx.join(name, system, recoverable, d.saga)
        if d.how == "rollback":
            model.rollback(tx)
            continue
        expected = (model.commit(tx, {}), {m.name for m in tx.pending()})
        if d.got != expected:
            problems.append(f"{d.txid}: caller got {d.got}, model predicts {expected}")
        d.acked = tx.acked_commit
    return problems


def _state_problems(
    coord: TransactionCoordinator, world: World, done: list[Done], words: Words
) -> list[str]:
    """After one recovery pass every transaction is finished, and everything agrees."""
    problems = [f"still unfinished after recovery: {v.txid}" for v in coord.unfinished()]
    problems += world.violations()
    for d in done:
        view = coord.transaction(d.txid)
        members = [(name, system) for name, system, _ in d.members]
        problems += world_problems(world, view, d.txid, members, d.acked, words)
        problems += history_problems(coord, view)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--per-thread", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("path", nargs="?", help="log directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    logging.getLogger("dtc_wal").propagate = False  # failures are expected; keep stderr clean
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    with tempfile.TemporaryDirectory(prefix="dtc-stress-") as tmp:
        path = args.path or tmp
        ends = run_stress(path, args.threads, args.per_thread, args.seed)
    print(f"stress: {dict(ends)} on {args.threads} threads, invariants hold")
    # What -X dev cannot see: raw file descriptors (LMDB, the directory lock) and threads.
    leaks = []
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=5)  # pool workers exit shortly after shutdown(wait=False)
        if thread.is_alive():
            leaks.append(f"thread still running after close: {thread.name}")
    leaks += [
        f"unclosed file descriptor {fd}: {target}"
        for fd, target in _open_fds().items()
        if fds_before.get(fd) != target
    ]
    for leak in leaks:
        print(leak, file=sys.stderr)
    return 1 if leaks else 0


def _open_fds() -> dict[str, str]:
    """This process's open file descriptors and what they point at (Linux only)."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return {}
    out = {}
    for fd in os.listdir(fd_dir):
        try:
            out[fd] = os.readlink(fd_dir / fd)
        except OSError:
            continue  # the descriptor listdir itself used, closed meanwhile
    return out


if __name__ == "__main__":
    sys.exit(main())
