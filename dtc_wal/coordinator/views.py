"""What a coordinator shows of a format-2 transaction: :class:`TransactionView` and its
:class:`ParticipantView`\\ s, read-only copies built from the protocol's
:class:`~dtc_wal.protocol.Transaction` (live, or folded from the log).

The field names are those of the format-1 views (``dtc_wal.history``), so code reading
``view.state``, ``view.participants[name].state`` or ``view.pending()`` keeps working; the
values are the protocol's enums (:class:`~dtc_wal.protocol.TxState`,
:class:`~dtc_wal.protocol.MemberState`, ...), string enums equal to the format-1 values of
the same name. Two differ on purpose (issue 12, one name per concept): a saga step whose
action ran is ``step-done`` (format 1 said ``prepared``), and an operator's resolution to
abort is ``abort`` (format 1: ``rollback``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..protocol import MemberState, Mode, Outcome, Transaction, TxState

__all__ = ["ParticipantView", "TransactionView", "view_of"]


@dataclasses.dataclass(frozen=True, slots=True)
class ParticipantView:
    """One participant (2PC) or saga step of a transaction, at position ``order``."""

    name: str
    order: int
    factory: str | None
    params: Mapping[str, Any]
    state: MemberState = MemberState.ENLISTED
    attempts: int = 0
    """Failed call attempts the log recorded."""
    last_error: str | None = None
    resolution: Outcome | None = None
    """What an operator said really happened to it (``dtc resolve``)."""
    resolved_by: str | None = None

    @property
    def recoverable(self) -> bool:
        """True when recovery can rebuild it (a registry factory, or importable functions)."""
        return self.factory is not None


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionView:
    """One transaction as its records say (a copy: it does not change afterwards)."""

    txid: str
    created_at: float
    updated_at: float
    mode: Mode | None
    state: TxState
    participants: Mapping[str, ParticipantView]
    decided_at: float | None = None
    reason: str | None = None
    decided_by: str | None = None
    data: Mapping[str, Any] | None = None
    """The commit's data (what a saga's compensations get after a crash)."""

    def ordered(self) -> list[ParticipantView]:
        """The participants in enlistment order."""
        return sorted(self.participants.values(), key=lambda p: p.order)

    def pending(self) -> list[ParticipantView]:
        """The participants that still need something (nothing is owed to settled ones)."""
        return [p for p in self.ordered() if not p.state.settled]

    @property
    def outcome(self) -> Outcome | None:
        """Commit or abort once decided; None while undecided (presumed abort)."""
        if self.state in (TxState.DECIDED_COMMIT, TxState.COMMITTED):
            return Outcome.COMMIT
        if self.state in (TxState.DECIDED_ABORT, TxState.ABORTED):
            return Outcome.ABORT
        return None


def view_of(tx: Transaction) -> TransactionView:
    """The view of a protocol transaction (its members copied, so it never changes)."""
    participants = {}
    for order, m in enumerate(tx.members):
        resolved = m.resolution
        participants[m.name] = ParticipantView(
            m.name,
            order,
            m.factory,
            dict(m.params or {}),
            m.state,
            m.attempts,
            m.error,
            resolved.outcome if resolved is not None else None,
            resolved.actor if resolved is not None else None,
        )
    return TransactionView(
        tx.txid,
        tx.opened_at,
        tx.updated_at,
        tx.mode,
        tx.state,
        participants,
        tx.decided_at,
        tx.reason,
        tx.actor,
        dict(tx.data) if tx.data is not None else None,
    )
