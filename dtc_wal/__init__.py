"""dtc-wal: a durable transaction coordinator (two-phase commit and sagas) over an LMDB WAL.

>>> from dtc_wal import TransactionCoordinator, ParticipantRegistry
"""

from __future__ import annotations

import logging

from .clock import Clock, ManualClock, SystemClock
from .coordinator import CommitHandle, CoordinatorOptions, CoordinatorStats, TransactionCoordinator
from .coordinator.views import ParticipantView, TransactionView
from .errors import (
    CommitIncompleteError,
    DtcError,
    NotRecoverableWarning,
    TransactionAborted,
    TransientError,
    VoteNo,
)
from .participant import Participant, SagaStep
from .registry import ParticipantRegistry
from .states import READ_ONLY, MemberState, Mode, Outcome, TxState, Vote

__all__ = [  # noqa: RUF022 -- plain sorted order, pinned by tests/test_public_api.py
    "Clock",
    "CommitHandle",
    "CommitIncompleteError",
    "CoordinatorOptions",
    "CoordinatorStats",
    "DtcError",
    "ManualClock",
    "MemberState",
    "Mode",
    "NotRecoverableWarning",
    "Outcome",
    "Participant",
    "ParticipantRegistry",
    "ParticipantView",
    "READ_ONLY",
    "SagaStep",
    "SystemClock",
    "TransactionAborted",
    "TransactionCoordinator",
    "TransactionView",
    "TransientError",
    "TxState",
    "Vote",
    "VoteNo",
]

__version__ = "0.1.0"

logging.getLogger("dtc_wal").addHandler(logging.NullHandler())


def __getattr__(name: str) -> object:
    """``ParticipantState`` and ``RecordType``: deprecated for one release (:mod:`.states`)."""
    from .states import deprecated

    return deprecated(name)
