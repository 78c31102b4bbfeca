"""Log format 2 as plain objects: one record per protocol step, not per member.

A transaction's history is a short sequence of these, always beginning with
:class:`Opened`. Members are named once, in the opening record, and referred to by their
position (``member`` / ``index``: 0, 1, ...) everywhere after it. The codec that turns them
into bytes lives with the log (``dtc_wal.log``), not here; these classes know nothing of
bytes. :meth:`dtc_wal.protocol.Transaction.apply` is the transition table over them.

What each path writes (``forced`` = the machine waits for its sync before going on):

===========================  ====================================================
2PC commit, 3 members        Opened (forced), Decided commit (forced), Ended (lazy)
... every member lists       Opened (lazy: it shares the decision's sync),
prepared work                Decided commit (forced), Ended (lazy)
2PC abort                    Opened (forced, before prepare), Decided abort (lazy),
                             Ended (lazy)
one-phase commit             Opened + Decided + Ended in one lazy append, after the
                             member's own commit (its commit is the decision)
saga of n steps, committed   Opened (forced), StepDone 0..n-2 (each forced),
                             Decided commit + Ended (forced together)
rollback before commit       Opened + Decided abort (lazy), Ended (lazy; a saga's
                             in the same append: no step ran)
===========================  ====================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeAlias

from .vocabulary import MemberState, Mode, Op, Outcome, Vote

__all__ = [
    "Acked",
    "Decided",
    "Ended",
    "Failed",
    "MemberSpec",
    "Opened",
    "Record",
    "Resolved",
    "StepDone",
]


@dataclasses.dataclass(frozen=True, slots=True)
class MemberSpec:
    """Who a member is, as the log keeps it: enough for recovery to rebuild it.

    ``factory`` names the registry factory that builds it (None: it was given as an object
    and cannot be rebuilt after a restart); ``params`` are the factory's keyword arguments.
    """

    name: str
    factory: str | None = None
    params: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Opened:
    """The transaction began and these members joined it, in this order (begun + every
    enlisted). ``at`` is when it began.

    It carries the commit ``data``: the opening record is written at commit time, when the
    data is known, and a saga's compensation after a crash needs it (compensations may take
    the data their action took). A transaction rolled back before commit has ``data`` None.
    """

    txid: str
    at: float
    mode: Mode
    members: tuple[MemberSpec, ...]
    data: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StepDone:
    """Saga: the action of step ``index`` completed. Durable before the next step starts,
    so after a crash at most the first step without one may have run. The last step's
    completion travels in the commit decision instead."""

    txid: str
    at: float
    index: int


@dataclasses.dataclass(frozen=True, slots=True)
class Decided:
    """The outcome, decided once and never changed.

    ``votes`` are the 2PC votes known at the decision, as ``(member, vote)`` pairs: every
    member for a commit, those that had answered for an abort (a read-only voter then takes
    no rollback). A saga's votes are empty: its commit decision says that every step's action
    completed. ``reason`` says why an abort was decided; ``actor`` is set when an operator
    decided (None: the protocol did).
    """

    txid: str
    at: float
    outcome: Outcome
    votes: tuple[tuple[int, Vote], ...] = ()
    reason: str | None = None
    actor: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Acked:
    """Progress: these members acknowledged the outcome, others are still pending.
    ``acks`` are ``(member, state reached)`` with the state COMMITTED, ROLLED_BACK or
    SKIPPED."""

    txid: str
    at: float
    acks: tuple[tuple[int, MemberState], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Ended:
    """The acknowledgements of the last round (as in :class:`Acked`), and the transaction is
    complete: every member is settled. Nothing follows it."""

    txid: str
    at: float
    acks: tuple[tuple[int, MemberState], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Failed:
    """A call to ``member`` failed after ``attempts`` tries (0: the member could not be
    rebuilt, so it was not called); ``error`` is the last error. The member stays pending."""

    txid: str
    at: float
    member: int
    op: Op
    error: str
    attempts: int


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """An operator settled ``member`` by hand: ``outcome`` is what really happened to it
    (against the transaction's outcome it is a heuristic outcome), ``actor`` who said so,
    ``reason`` why."""

    txid: str
    at: float
    member: int
    outcome: Outcome
    actor: str
    reason: str


Record: TypeAlias = Opened | StepDone | Decided | Acked | Ended | Failed | Resolved
"""Any format-2 record."""
