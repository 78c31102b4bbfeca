"""Events: what a driver tells a machine. Each carries ``now`` (the driver's wall-clock
time, seconds since the epoch): the machine never reads a clock. ``member`` is a position
as returned by :meth:`~.machine.Machine.enlist`.

A driver reports every :class:`~.commands.Call` it was given exactly once, with
:class:`Voted` (``prepare`` only), :class:`Acknowledged` or :class:`CallFailed`; and every
durable :class:`~.commands.Append` with :class:`Durable` or :class:`AppendFailed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeAlias

from .vocabulary import FailureKind, Op, Outcome, Vote

__all__ = [
    "Acknowledged",
    "AppendFailed",
    "CallFailed",
    "Commit",
    "Durable",
    "Event",
    "Recover",
    "Resolve",
    "Rollback",
    "Voted",
]


@dataclasses.dataclass(slots=True)
class Commit:
    """The caller commits with ``data`` (None: no data). Once per live machine."""

    now: float
    data: Mapping[str, Any] | None = None


@dataclasses.dataclass(slots=True)
class Rollback:
    """Abort an open transaction (``reason`` for the log; ``actor`` when an operator or the
    zombie reaper, not the caller, asks). On a seeded, undecided machine: an operator's
    abort decision, logged durably and not delivered until :class:`Recover`."""

    now: float
    reason: str
    actor: str | None = None


@dataclasses.dataclass(slots=True)
class Recover:
    """Drive a seeded machine (:meth:`~.machine.Machine.recover`) to the outcome its
    records imply: re-send a decided outcome to the pending members, or presume abort."""

    now: float


@dataclasses.dataclass(slots=True)
class Durable:
    """The durable append ``append`` (an :attr:`~.commands.Append.id`) is synced, and with
    it every record appended before it."""

    now: float
    append: int


@dataclasses.dataclass(slots=True)
class AppendFailed:
    """Append ``append`` was not written (the log's error text in ``error``). The machine
    appends nothing more: without a durable decision the outcome is abort."""

    now: float
    append: int
    error: str


@dataclasses.dataclass(slots=True)
class Voted:
    """Member ``member`` answered ``prepare`` with ``vote``."""

    now: float
    member: int
    vote: Vote = Vote.YES


@dataclasses.dataclass(slots=True)
class Acknowledged:
    """Member ``member`` completed ``op`` (any op but ``prepare``, which is :class:`Voted`)."""

    now: float
    member: int
    op: Op


@dataclasses.dataclass(slots=True)
class CallFailed:
    """The call of ``op`` on ``member`` ended without success after ``attempts`` tries;
    ``error`` is the last error's text (it goes into reasons and Failed records)."""

    now: float
    member: int
    op: Op
    error: str
    attempts: int = 1
    kind: FailureKind = FailureKind.ERROR


@dataclasses.dataclass(slots=True)
class Resolve:
    """An operator settled ``member`` (None: every pending member) by hand: ``outcome`` is
    what happened to it. Only on a decided machine with nothing in flight; against the
    decided outcome only with ``heuristic``."""

    now: float
    member: int | None
    outcome: Outcome
    actor: str
    reason: str
    heuristic: bool = False


Event: TypeAlias = (
    Commit
    | Rollback
    | Recover
    | Durable
    | AppendFailed
    | Voted
    | Acknowledged
    | CallFailed
    | Resolve
)
