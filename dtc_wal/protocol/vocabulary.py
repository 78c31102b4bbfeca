"""The protocol's words: one enum per concept, one name per value.

These are the final names (issue 12, item 6). A *vote* is what a participant answers to
``prepare``; a *state* is where a member stands in its transaction; an *outcome* is what the
transaction decided; an *op* is the participant method a call runs. None of them stands in
for another: a saga step that completed its action is ``STEP_DONE``, not "prepared"; a
read-only vote is a :class:`Vote`, the state it leads to a :class:`MemberState`.
"""

from __future__ import annotations

import enum

__all__ = [
    "FORWARD_OPS",
    "SETTLED",
    "FailureKind",
    "MemberState",
    "Mode",
    "Op",
    "Outcome",
    "Retry",
    "TxState",
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


class TxState(enum.StrEnum):
    """A transaction's state as its records say (derived from outcome and end)."""

    ACTIVE = "active"
    """Opened, not decided."""
    DECIDED_COMMIT = "decided-commit"
    DECIDED_ABORT = "decided-abort"
    COMMITTED = "committed"
    """Ended with outcome commit."""
    ABORTED = "aborted"
    """Ended with outcome abort."""


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


class Retry(enum.StrEnum):
    """Which errors a driver retries (with backoff, up to its retry limit) for a call."""

    TRANSIENT = "transient"
    """Only transient errors (prepare, action, one-phase): any other error is a refusal."""
    ANY = "any"
    """Every error (commit, rollback, compensate): the outcome is decided, nothing to refuse."""


class FailureKind(enum.StrEnum):
    """How a call ended without success (after the driver's retries)."""

    REFUSED = "refused"
    """The participant refused (a no vote, or a forward call raising a non-transient error)."""
    TIMED_OUT = "timed-out"
    """No answer by the call's deadline."""
    ERROR = "error"
    """It kept failing until the driver gave up (or the driver dropped the call)."""
    UNAVAILABLE = "unavailable"
    """The driver has no live object for the member (it could not be rebuilt): not called."""
