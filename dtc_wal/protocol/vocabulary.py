"""The protocol's words: one enum per concept, one name per value.

These are the final names (issue 12, item 6). A *vote* is what a participant answers to
``prepare``; a *state* is where a member stands in its transaction; an *outcome* is what the
transaction decided; an *op* is the participant method a call runs. None of them stands in
for another: a saga step that completed its action is ``STEP_DONE``, not "prepared"; a
read-only vote is a :class:`Vote`, the state it leads to a :class:`MemberState`.
"""

from __future__ import annotations

import enum

from .records import FORWARD_OPS, SETTLED, MemberState, Mode, Op, Outcome, Vote

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

    @property
    def finished(self) -> bool:
        """Ended: nothing more is owed to any member."""
        return self is TxState.COMMITTED or self is TxState.ABORTED

    @property
    def decided(self) -> bool:
        """The outcome is decided (and, in the log, durable)."""
        return self is not TxState.ACTIVE


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
