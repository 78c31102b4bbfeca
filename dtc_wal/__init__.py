"""dtc-wal: a durable transaction coordinator (two-phase commit and sagas) over an LMDB WAL.

>>> from dtc_wal import TransactionCoordinator, ParticipantRegistry
"""

from __future__ import annotations

import logging

from .clock import Clock, ManualClock, SystemClock
from .coordinator import TransactionCoordinator
from .errors import (
    CommitIncompleteError,
    DtcError,
    TransactionAborted,
    TransientError,
    VoteNo,
)
from .history import ParticipantView, TransactionView
from .participant import Participant, SagaStep
from .registry import ParticipantRegistry
from .states import Mode, Outcome, ParticipantState, RecordType, TxState

__all__ = [
    "Clock",
    "CommitIncompleteError",
    "DtcError",
    "ManualClock",
    "Mode",
    "Outcome",
    "Participant",
    "ParticipantRegistry",
    "ParticipantState",
    "ParticipantView",
    "RecordType",
    "SagaStep",
    "SystemClock",
    "TransactionAborted",
    "TransactionCoordinator",
    "TransactionView",
    "TransientError",
    "TxState",
    "VoteNo",
]

__version__ = "0.1.0"

logging.getLogger("dtc_wal").addHandler(logging.NullHandler())
