"""The protocol's own errors. The public facade maps them to :mod:`dtc_wal.errors` (the
protocol imports nothing from the rest of the package, so it cannot raise those itself):
``OutOfOrderError`` -> ``InvalidTransitionError``, ``DuplicateMemberError`` ->
``DuplicateParticipantError``, ``MixedModeError`` -> ``MixedTransactionError``,
``InvalidMemberError`` -> ``InvalidParticipantError``, ``InvalidOptionError`` -> its
namesake, ``InvalidEventError`` -> ``TransactionStateError`` (and kin)."""

from __future__ import annotations

__all__ = [
    "DuplicateMemberError",
    "InvalidEventError",
    "InvalidMemberError",
    "InvalidOptionError",
    "MixedModeError",
    "OutOfOrderError",
    "ProtocolError",
]


class ProtocolError(Exception):
    """Root of the protocol's errors. Nothing changed in the object that raised it."""


class OutOfOrderError(ProtocolError, ValueError):
    """A record breaks the transition table. The message names the transaction, the record
    and the rule it breaks."""


class InvalidEventError(ProtocolError):
    """The machine cannot take this event in its state: commit twice, a member joining after
    commit, a resolution before the decision, a sync report for an append nobody awaits."""


class DuplicateMemberError(InvalidEventError, ValueError):
    """A member name is already taken in this transaction."""


class MixedModeError(InvalidEventError, ValueError):
    """A 2PC member and a saga step in one transaction."""


class InvalidMemberError(ProtocolError, ValueError):
    """A member the protocol cannot take: an empty name, 2PC abilities on a saga step."""


class InvalidOptionError(ProtocolError, ValueError):
    """An :class:`~.options.Options` value out of range."""
