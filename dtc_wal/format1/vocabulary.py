"""The format-1 log's vocabulary, for reading format-1 logs (``dtc upgrade``): record
types, participant states and outcomes as format 1 wrote them. ``Mode`` and ``TxState`` are
the protocol's own (:mod:`dtc_wal.protocol.vocabulary`). The transition rules that use
these live in :mod:`.history`.
"""

from __future__ import annotations

import enum

from ..protocol.vocabulary import Mode, TxState

__all__ = ["READ_ONLY", "Mode", "Outcome", "ParticipantState", "RecordType", "TxState", "Vote"]


class RecordType(enum.IntEnum):
    """What a log record says happened. The integer is the on-disk code (docs/log-format.md)."""

    BEGUN = 1
    """A transaction started; carries its mode once the first participant fixes it."""
    ENLISTED = 2
    """A participant (2PC) or step (saga) joined: name, factory name, params, order."""
    PREPARED = 3
    """2PC: the participant voted yes. Saga: the step's action completed."""
    DECIDED_COMMIT = 4
    """The outcome is commit. Synced before any commit is sent."""
    DECIDED_ABORT = 5
    """The outcome is abort (presumed when absent)."""
    ACKNOWLEDGED = 6
    """A participant finished its part of the outcome (committed, rolled back, or skipped)."""
    COMPLETED = 7
    """Every participant acknowledged or was resolved: the transaction is finished."""
    FAILED = 8
    """A participant call failed after its retries (informational: error and attempts)."""
    RESOLVED = 9
    """An operator settled a participant that could not be reached (heuristic outcome)."""


class Outcome(enum.StrEnum):
    """What a participant did once the transaction was decided."""

    COMMIT = "commit"
    ROLLBACK = "rollback"
    SKIP = "skip"
    """Saga only: the step never ran, so there was nothing to compensate."""
    READ_ONLY = "read-only"
    """On a PREPARED record: the participant voted read-only and leaves phase two."""


class ParticipantState(enum.StrEnum):
    """One participant's state inside a transaction."""

    ENLISTED = "enlisted"
    PREPARED = "prepared"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled-back"
    SKIPPED = "skipped"
    RESOLVED = "resolved"
    READ_ONLY = "read-only"

    @property
    def done(self) -> bool:
        """True once nothing more needs to be sent to this participant."""
        return self in (
            ParticipantState.COMMITTED,
            ParticipantState.ROLLED_BACK,
            ParticipantState.SKIPPED,
            ParticipantState.RESOLVED,
            ParticipantState.READ_ONLY,
        )


class Vote(enum.Enum):
    """What ``prepare`` may return besides None (a yes vote)."""

    READ_ONLY = "read-only"
    """The participant changed nothing: it needs no commit or rollback (left out of phase
    two, as in Narayana and Bitronix)."""


READ_ONLY = Vote.READ_ONLY
