"""Log format 2 as plain objects: one record per protocol step, not per member.

A transaction's history is a short sequence of these, always beginning with
:class:`Opened`. Members are named once, in the opening record, and referred to by their
position (``member`` / ``index``: 0, 1, ...) everywhere after it.

The protocol produces them and folds them back (:meth:`dtc_wal.protocol.Transaction.apply`
is the transition table over them); a log backend (:mod:`dtc_wal.log.lmdb`) frames and
stores them, importing this module -- plain values, standard library only -- and nothing
else of the protocol. It knows nothing of bytes.

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
import enum
from collections.abc import Mapping
from typing import Any, TypeAlias

__all__ = [
    "FORWARD_OPS",
    "SETTLED",
    "Acked",
    "Decided",
    "Ended",
    "Failed",
    "MemberSpec",
    "MemberState",
    "Mode",
    "Op",
    "Opened",
    "Outcome",
    "Record",
    "Resolved",
    "StepDone",
    "Vote",
]


class Mode(enum.StrEnum):
    """How a transaction drives its members; fixed by the first member that joins."""

    TWO_PHASE = "2pc"
    """Two-phase commit: every member votes in ``prepare``, then all commit or roll back.
    One-phase commit is a path of this mode (a lone member that can), not a mode."""
    SAGA = "saga"
    """Ordered saga: actions in order, compensations in reverse order after a failure."""


class Outcome(enum.StrEnum):
    """What a transaction decided. Presumed abort: no decision in the log means ABORT."""

    COMMIT = "commit"
    ABORT = "abort"


class Vote(enum.StrEnum):
    """A member's answer to ``prepare`` when it does not refuse."""

    YES = "yes"
    """It holds its work prepared and can commit it, even after its own crash."""
    READ_ONLY = "read-only"
    """It changed nothing: it takes no part in phase two (no commit, no rollback)."""


class MemberState(enum.StrEnum):
    """Where one member stands in its transaction."""

    ENLISTED = "enlisted"
    """Joined; nothing it did is known to the log."""
    PREPARED = "prepared"
    """2PC: voted yes (known from the decision record)."""
    READ_ONLY = "read-only"
    """2PC: voted read-only. Settled: nothing more is sent to it."""
    STEP_DONE = "step-done"
    """Saga: its action completed (a StepDone record, or the commit decision)."""
    COMMITTED = "committed"
    """Acknowledged commit (2PC), or a saga step of a committed saga."""
    ROLLED_BACK = "rolled-back"
    """Acknowledged rollback (2PC) or compensation (saga)."""
    SKIPPED = "skipped"
    """Saga: the step never ran, so there was nothing to compensate."""
    RESOLVED = "resolved"
    """An operator settled it by hand (see the member's resolution)."""

    @property
    def settled(self) -> bool:
        """True once nothing more needs to be sent to the member (in :data:`SETTLED`)."""
        return self in SETTLED


SETTLED = frozenset(
    {
        MemberState.READ_ONLY,
        MemberState.COMMITTED,
        MemberState.ROLLED_BACK,
        MemberState.SKIPPED,
        MemberState.RESOLVED,
    }
)
"""The member states after which nothing more is sent to a member."""


class Op(enum.StrEnum):
    """The participant operation a call runs; the value is the method's name."""

    PREPARE = "prepare"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    COMMIT_ONE_PHASE = "commit_one_phase"
    ACTION = "action"
    """Saga: the step's forward work (``commit_function`` of the seed API)."""
    COMPENSATE = "compensate"
    """Saga: undo the step (``rollback_function`` of the seed API)."""

    @property
    def forward(self) -> bool:
        """True for the ops that run before the decision (in :data:`FORWARD_OPS`)."""
        return self in FORWARD_OPS


FORWARD_OPS = frozenset({Op.PREPARE, Op.COMMIT_ONE_PHASE, Op.ACTION})
"""The ops that run before the decision: a failure of one decides abort."""


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
