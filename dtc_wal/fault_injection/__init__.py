"""Fault injection: named crash points (real SIGKILL), faulty participants, a kill harness.

Crash points cost nothing unless armed (see :mod:`dtc_wal.fault_injection.points`).
"""

from __future__ import annotations

from .points import CRASH_POINTS, arm, disarm, hits

__all__ = ["CRASH_POINTS", "arm", "disarm", "hits"]
