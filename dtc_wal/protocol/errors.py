"""The protocol's own errors. The public facade maps them to :mod:`dtc_wal.errors`
(the protocol imports nothing from the rest of the package)."""

from __future__ import annotations

__all__ = [
    "DuplicateMemberError",
    "InvalidEventError",
    "MixedModeError",
    "OutOfOrderError",
    "ProtocolError",
]


class ProtocolError(Exception):
    """Root of the protocol's errors. Nothing changed in the object that raised it."""


class OutOfOrderError(ProtocolError):
    """A record breaks the transition table (facade: ``InvalidTransitionError``). The
    message names the transaction, the record and the rule it breaks."""


class InvalidEventError(ProtocolError):
    """The machine cannot take this event in its state: commit twice, a member joining after
    commit, a resolution before the decision (facade: ``TransactionStateError`` and kin)."""


class DuplicateMemberError(InvalidEventError):
    """A member name is already taken in this transaction (``DuplicateParticipantError``)."""


class MixedModeError(InvalidEventError):
    """A 2PC member and a saga step in one transaction (``MixedTransactionError``)."""
