"""Crash recovery: replay the log, drive every unfinished transaction to its outcome.

A :class:`~dtc_wal.TransactionCoordinator` recovers by itself when it opens a log and keeps
retrying in a background loop; :func:`recover` is the same pass for tools (``dtc recover``).
"""

from __future__ import annotations

from .engine import PRESUMED_ABORT, RecoveryEngine, plan, rebuild_members
from .report import InDoubt, RecoveryReport, TransactionAction
from .resolve import default_actor, resolve_transaction
from .standalone import in_doubt_of, recover

__all__ = [
    "PRESUMED_ABORT",
    "InDoubt",
    "RecoveryEngine",
    "RecoveryReport",
    "TransactionAction",
    "default_actor",
    "in_doubt_of",
    "plan",
    "rebuild_members",
    "recover",
    "resolve_transaction",
]
