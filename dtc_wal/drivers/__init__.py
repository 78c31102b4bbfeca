"""Drivers: run :mod:`dtc_wal.protocol` machines -- threads, retries, timeouts, inline
calls, group commit, ``wait=False`` completion -- and the internal :class:`Engine` the
facade will delegate to (docs/architecture.md). Not used by ``TransactionCoordinator`` yet.
"""

from __future__ import annotations

from .completer import Completer
from .counters import Counters
from .engine import Engine
from .members import LiveMember
from .options import EngineOptions
from .recovery import plan_pass, recover_pass, seed
from .run import Run
from .threaded import ThreadedDriver
from .translate import protocol_errors

__all__ = [
    "Completer",
    "Counters",
    "Engine",
    "EngineOptions",
    "LiveMember",
    "Run",
    "ThreadedDriver",
    "plan_pass",
    "protocol_errors",
    "recover_pass",
    "seed",
]
