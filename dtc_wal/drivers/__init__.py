"""Drivers: run :mod:`dtc_wal.protocol` machines -- threads, retries, timeouts, inline
calls, group commit, ``wait=False`` completion -- and the internal :class:`Engine` the
facade will delegate to (docs/architecture.md). Not used by ``TransactionCoordinator`` yet.
"""

from __future__ import annotations

from .completer import Completer
from .engine import Engine, protocol_errors
from .members import LiveMember
from .options import EngineOptions
from .recovery import PassReport, recover_pass, seed
from .run import Run
from .threaded import ThreadedDriver

__all__ = [
    "Completer",
    "Engine",
    "EngineOptions",
    "LiveMember",
    "PassReport",
    "Run",
    "ThreadedDriver",
    "protocol_errors",
    "recover_pass",
    "seed",
]
