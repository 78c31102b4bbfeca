"""Crash recovery: drive every unfinished transaction in the log to its outcome.

A :class:`~dtc_wal.TransactionCoordinator` recovers by itself when it opens a log and keeps
retrying in a background loop; :func:`recover` is the same pass for tools (``dtc recover``).
The pass itself is :mod:`dtc_wal.drivers.recovery`: protocol machines seeded from the log.
"""

from __future__ import annotations

from ..protocol import PRESUMED_ABORT
from .report import InDoubt, RecoveryReport, TransactionAction
from .standalone import recover

__all__ = ["PRESUMED_ABORT", "InDoubt", "RecoveryReport", "TransactionAction", "recover"]
