"""CPU cost of the protocol machine alone: microseconds per transaction, per path.

    python -m benchmarks.protocol [--transactions 20000] [--repeat 5]

A tiny driver answers every command at once (a durable append is synced, every call
succeeds, or the last prepare votes no on the abort path) and feeds the answers back, so
what is timed is the machine -- creating it, enlisting members, building records, checking
every transition -- plus this loop. No log, no threads, no clock: ``now`` is a constant.
The issue's budget is <= 60 us per 3-participant 2PC commit for everything (log encoding
and the driver included); the machine's share should be a few of those. The best of
``--repeat`` runs is printed, with the records and appends each path writes.
A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, Protocol

from dtc_wal.protocol import (
    Acknowledged,
    Append,
    Call,
    CallFailed,
    Command,
    Commit,
    Durable,
    Event,
    FailureKind,
    Finish,
    Machine,
    MemberSpec,
    Mode,
    Op,
    Voted,
)

from .workloads import _ZopeDM

NOW = 1_700_000_000.0
SPECS = tuple(MemberSpec(f"p{i}", "factory", {"i": i}) for i in range(3))


class Handles(Protocol):
    def handle(self, event: Event) -> list[Command]: ...


def drive(machine: Handles, first: Event, refuse: int | None = None) -> tuple[int, int]:
    """Answer ``machine``'s commands until it finishes; return (records, appends)."""
    todo: list[Command] = machine.handle(first)
    records = appends = 0
    handle = machine.handle
    while todo:
        command = todo.pop(0)
        answer: Event | None = None
        if type(command) is Call:
            if command.op is Op.PREPARE:
                if command.member == refuse:
                    answer = CallFailed(
                        NOW, command.member, Op.PREPARE, "VoteNo: no", 1, FailureKind.REFUSED
                    )
                else:
                    answer = Voted(NOW, command.member)
            else:
                answer = Acknowledged(NOW, command.member, command.op)
        elif type(command) is Append:
            records += len(command.records)
            appends += 1
            if command.durable:
                answer = Durable(NOW, command.id)
        elif type(command) is Finish:
            break
        if answer is not None:
            todo.extend(handle(answer))
    return records, appends


def two_phase(lists_prepared: bool = False, refuse: int | None = None) -> tuple[int, int]:
    machine = Machine("tx", NOW)
    for spec in SPECS:
        machine.enlist(spec, Mode.TWO_PHASE, lists_prepared=lists_prepared)
    return drive(machine, Commit(NOW, {"order": 1}), refuse)


def saga() -> tuple[int, int]:
    machine = Machine("tx", NOW)
    for spec in SPECS:
        machine.enlist(spec, Mode.SAGA)
    return drive(machine, Commit(NOW, {"order": 1}))


def one_phase() -> tuple[int, int]:
    machine = Machine("tx", NOW)
    machine.enlist(SPECS[0], Mode.TWO_PHASE, commit_one_phase=True)
    return drive(machine, Commit(NOW, {"order": 1}))


PATHS: dict[str, Callable[[], tuple[int, int]]] = {
    "2pc commit, 3 participants": two_phase,
    "2pc commit, 3 lists_prepared": lambda: two_phase(lists_prepared=True),
    "2pc abort, last votes no": lambda: two_phase(refuse=2),
    "saga commit, 3 steps": saga,
    "one-phase commit": one_phase,
}


class _Replay:
    """Hands back, call by call, the commands a real machine returned: the driver alone."""

    def __init__(self, script: list[list[Command]]) -> None:
        self.script = script
        self.i = 0

    def handle(self, event: Event) -> list[Command]:
        self.i += 1
        return list(self.script[self.i - 1])


class _Recorder:
    """Forwards to a machine and keeps what it returned."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.script: list[list[Command]] = []

    def handle(self, event: Event) -> list[Command]:
        commands = self.machine.handle(event)
        self.script.append(list(commands))  # drive() consumes the list it gets
        return commands


def _script() -> list[list[Command]]:
    """The commands of one 3-participant 2PC commit, per event."""
    machine = Machine("tx", NOW)
    for spec in SPECS:
        machine.enlist(spec, Mode.TWO_PHASE)
    recorder = _Recorder(machine)
    drive(recorder, Commit(NOW, {"order": 1}))
    return recorder.script


_ZOPE: list[Any] = []  # one transaction manager, made on first use


def zope_commit() -> None:
    """The anchor: zope ``transaction`` in memory, three no-op data managers."""
    if not _ZOPE:
        import transaction  # the test extra installs it

        _ZOPE.append(transaction.TransactionManager())
    tm = _ZOPE[0]
    txn = tm.begin()
    for key in ("a", "b", "c"):
        txn.join(_ZopeDM(tm, key))
    tm.commit()


def measure(path: Callable[[], object], n: int, repeat: int) -> float:
    """Microseconds per call: the best of ``repeat`` chunks (other load only slows)."""
    chunk = max(1, n // repeat)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(chunk):
            path()
        best = min(best, (time.perf_counter() - start) / chunk)
    return best * 1e6


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=30, help="chunks; the best one counts")
    args = parser.parse_args(argv)
    n, repeat = args.transactions, args.repeat
    results: dict[str, Any] = {"paths": {}}
    print(f"{'path':<32} {'us/tx':>8} {'records':>8} {'appends':>8}")
    for name, path in PATHS.items():
        records, appends = path()
        us = measure(path, n, repeat)
        results["paths"][name] = {"us_per_tx": us, "records": records, "appends": appends}
        print(f"{name:<32} {us:>8.2f} {records:>8} {appends:>8}")
    script = _script()
    driver = measure(lambda: drive(_Replay(script), Commit(NOW, {"order": 1})), n, repeat)
    machine = results["paths"]["2pc commit, 3 participants"]["us_per_tx"] - driver
    zope = measure(zope_commit, n, repeat)
    results.update(driver_us=driver, machine_us=machine, zope_us=zope)
    print(f"\n2pc commit: this loop alone {driver:.2f} us, so the machine's share {machine:.2f} us")
    print(f"anchor: zope transaction in memory, 3 no-op managers: {zope:.2f} us")
    print(f"machine share / zope commit: {machine / zope:.2f}")
    return results


if __name__ == "__main__":
    main()
