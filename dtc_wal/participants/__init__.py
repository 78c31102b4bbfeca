"""Participants that ship with dtc-wal.

* :class:`IdempotencyBarrier` -- wraps any participant or saga step and makes it safe
  against duplicate commit/rollback, null compensation and hanging prepares, with durable
  state in its own LMDB file (:mod:`dtc_wal.participants.barrier`).
* ``dtc_wal.participants.postgres`` -- PostgreSQL branches over psycopg 3's two-phase
  commit API (:class:`~dtc_wal.participants.postgres.PostgresParticipant`,
  :class:`~dtc_wal.participants.postgres.PostgresResource`). Import it explicitly: it needs
  the optional dependency ``pip install dtc-wal[postgres]``, and importing this package
  does not import psycopg.

See docs/participants.md.
"""

from __future__ import annotations

from .barrier import BarrierParticipant, BarrierSagaStep, BarrierState, IdempotencyBarrier
from .errors import (
    BarrierConflictError,
    BarrierError,
    BarrierLockedError,
    CoordinatorIdInUseError,
    PostgresParticipantError,
    PreparedTransactionsDisabledError,
)

__all__ = [
    "BarrierConflictError",
    "BarrierError",
    "BarrierLockedError",
    "BarrierParticipant",
    "BarrierSagaStep",
    "BarrierState",
    "CoordinatorIdInUseError",
    "IdempotencyBarrier",
    "PostgresParticipantError",
    "PreparedTransactionsDisabledError",
]
