"""Errors raised by the shipped participants (the barrier and PostgreSQL).

They live here rather than in :mod:`dtc_wal.errors` because they belong to optional
participant code; all derive from :class:`dtc_wal.errors.DtcError`. This module imports
neither ``lmdb`` state nor ``psycopg``, so handlers can import it cheaply.
"""

from __future__ import annotations

from ..errors import DtcError

__all__ = [
    "BarrierConflictError",
    "BarrierError",
    "BarrierLockedError",
    "CoordinatorIdInUseError",
    "PostgresParticipantError",
    "PreparedTransactionsDisabledError",
]


class BarrierError(DtcError):
    """A problem with an idempotency barrier's own file."""


class BarrierLockedError(BarrierError):
    """Another process holds the barrier directory; one process owns a barrier at a time."""


class BarrierConflictError(BarrierError):
    """A call contradicts what the barrier already recorded for the transaction, e.g.
    ``commit`` after the barrier rolled the transaction back. Retrying cannot fix it: the
    coordinator and this participant disagree about the outcome and an operator must look."""


class PostgresParticipantError(DtcError):
    """Misuse of, or a server setting that prevents, a PostgreSQL two-phase-commit branch."""


class CoordinatorIdInUseError(PostgresParticipantError):
    """Another process uses the same ``coordinator_id`` on the same database. Two
    coordinators with one id would roll back each other's prepared transactions: give each
    coordinator log its own id, or stop the other coordinator."""


class PreparedTransactionsDisabledError(PostgresParticipantError):
    """The server runs with ``max_prepared_transactions = 0``: ``PREPARE TRANSACTION`` is
    disabled there, so it cannot take part in two-phase commit."""
