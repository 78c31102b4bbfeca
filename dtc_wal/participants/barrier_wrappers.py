"""The participants :class:`~dtc_wal.participants.barrier.IdempotencyBarrier` hands out:
a two-phase-commit participant (:meth:`~.IdempotencyBarrier.guard`) and a saga step
(:meth:`~.IdempotencyBarrier.guard_step`) whose every call goes through the barrier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..participant import Participant, SagaStep

if TYPE_CHECKING:
    from .barrier import IdempotencyBarrier

__all__ = ["BarrierParticipant", "BarrierSagaStep"]


class BarrierParticipant:
    """A two-phase-commit participant behind an :class:`IdempotencyBarrier`.

    Enlisted under the wrapped participant's ``name`` (or its class name).
    """

    def __init__(self, participant: Participant, barrier: IdempotencyBarrier) -> None:
        self.participant = participant
        self.barrier = barrier
        self.name: str = getattr(participant, "name", None) or type(participant).__name__

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.barrier.run_first(
            transaction_id, lambda: self.participant.prepare(transaction_id, data), "prepare"
        )

    def commit(self, transaction_id: str) -> None:
        self.barrier.run_commit(transaction_id, lambda: self.participant.commit(transaction_id))

    def rollback(self, transaction_id: str) -> None:
        self.barrier.run_rollback(
            transaction_id, lambda: self.participant.rollback(transaction_id), "rollback"
        )

    def __repr__(self) -> str:
        return f"BarrierParticipant({self.participant!r}, {str(self.barrier.path)!r})"


class BarrierSagaStep:
    """A saga step behind an :class:`IdempotencyBarrier`: the action runs at most once, a
    compensation before the action is recorded and makes the late action vote no."""

    def __init__(self, step: SagaStep, barrier: IdempotencyBarrier) -> None:
        self.step = step
        self.barrier = barrier
        self.name: str = getattr(step, "name", None) or type(step).__name__

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.barrier.run_first(
            transaction_id, lambda: self.step.action(transaction_id, data), "action"
        )

    def compensate(self, transaction_id: str) -> None:
        self.barrier.run_rollback(
            transaction_id, lambda: self.step.compensate(transaction_id), "compensation"
        )

    def __repr__(self) -> str:
        return f"BarrierSagaStep({self.step!r}, {str(self.barrier.path)!r})"
