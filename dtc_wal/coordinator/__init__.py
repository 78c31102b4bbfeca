"""The coordinator: the public facade over a driver, a log and a registry."""

from __future__ import annotations

from ..drivers.handle import CommitHandle
from .facade import TransactionCoordinator
from .options import CoordinatorOptions
from .stats import CoordinatorStats

__all__ = ["CommitHandle", "CoordinatorOptions", "CoordinatorStats", "TransactionCoordinator"]
