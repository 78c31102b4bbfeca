"""The transaction crash points (:data:`dtc_wal._crash_hooks.TRANSACTION_POINTS`) at their
places in the threaded driver. The driver calls these only when a point is armed
(``if points.ARMED:``), so a disarmed process pays one dict truth test per place.

=============================  ==================================================
point                          passed
=============================  ==================================================
prepare.before-send            before the prepare calls are sent
prepare.after-first            the first yes (or read-only) vote arrived
prepare.after-all              every member voted; the decision not appended yet
decision.after-commit-log      the durable append of Decided commit returned
decision.after-abort-log       Decided abort appended (lazily); no rollback sent
commit.after-first             the first commit acknowledgement arrived
commit.after-all               every commit acknowledged; Ended not appended yet
rollback.after-first / -all    the same for 2PC rollbacks
saga.after-step                a saga action completed; its StepDone not appended
saga.after-step-log            the durable append of a StepDone returned
saga.after-compensation        a compensation completed
complete.after-log             Ended appended (lazily: it may not be on disk)
=============================  ==================================================

As in the old core, a one-phase commit (its whole history in one lazy append) passes no
protocol point.

``wal.before-sync`` and ``wal.after-sync`` are the log's (:mod:`dtc_wal.log.group_commit`).
"""

from __future__ import annotations

from .. import _crash_hooks as points
from ..protocol import (
    Acknowledged,
    Append,
    Call,
    Command,
    Decided,
    Ended,
    Event,
    Failed,
    Op,
    Opened,
    Outcome,
    StepDone,
    Voted,
)
from .run import Run

__all__ = ["after_append", "before_calls", "handle"]

_ACKED = {
    Op.COMMIT: ("commit.after-first", "commit.after-all"),
    Op.ROLLBACK: ("rollback.after-first", "rollback.after-all"),
}


def after_append(command: Append) -> None:
    """An append returned (a durable one: synced)."""
    for record in command.records:
        if isinstance(record, Decided):
            if record.outcome is Outcome.ABORT:
                points.hit("decision.after-abort-log")
            elif command.durable:
                points.hit("decision.after-commit-log")
        elif isinstance(record, StepDone) and command.durable:
            points.hit("saga.after-step-log")
        elif isinstance(record, Ended) and not isinstance(command.records[0], Opened):
            points.hit("complete.after-log")  # not for a whole one-phase commit: no point


def before_calls(calls: list[Call]) -> None:
    """Calls are about to be sent."""
    if any(call.op is Op.PREPARE for call in calls):
        points.hit("prepare.before-send")


def handle(run: Run, event: Event) -> list[Command]:
    """``run.machine.handle(event)`` with the points around it."""
    seen = run.hits
    if seen is None:
        seen = run.hits = {}
    if isinstance(event, Voted):
        n = seen["votes"] = seen.get("votes", 0) + 1
        if n == 1:
            points.hit("prepare.after-first")
        if n == len(run.members):
            points.hit("prepare.after-all")
    elif isinstance(event, Acknowledged):
        op = event.op
        if op is Op.ACTION:
            points.hit("saga.after-step")
        elif op is Op.COMPENSATE:
            points.hit("saga.after-compensation")
        elif op in _ACKED:
            n = seen[op.value] = seen.get(op.value, 0) + 1
            if n == 1:
                points.hit(_ACKED[op][0])
    commands = run.machine.handle(event)
    if isinstance(event, Acknowledged) and event.op in _ACKED and _ends_clean(commands):
        points.hit(_ACKED[event.op][1])
    return commands


def _ends_clean(commands: list[Command]) -> bool:
    """The commands append Ended with no Failed record: every member acknowledged."""
    for command in commands:
        if isinstance(command, Append):
            kinds = {type(r) for r in command.records}
            return Ended in kinds and Failed not in kinds
    return False
