"""The coordinator: public API (core), protocol drivers, participant calls."""

from __future__ import annotations

from .completer import CommitHandle
from .core import TransactionCoordinator

__all__ = ["CommitHandle", "TransactionCoordinator"]
