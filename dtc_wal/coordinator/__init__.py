"""The coordinator: public API (core), protocol drivers, participant calls."""

from __future__ import annotations

from .completer import CommitHandle
from .core import TransactionCoordinator
from .options import CoordinatorOptions
from .stats import CoordinatorStats

__all__ = ["CommitHandle", "CoordinatorOptions", "CoordinatorStats", "TransactionCoordinator"]
