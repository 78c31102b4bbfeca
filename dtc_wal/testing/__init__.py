"""Test your participants and your program against crashes and faults (docs/testing.md).

* crash points (:mod:`.points`): :func:`arm` a named point in the process that is meant to
  die and it SIGKILLs itself there; nothing is armed unless a call says so, and the
  environment is never read. ``python -m dtc_wal.testing.crash_at SPEC SCRIPT [ARG...]``
  arms, then runs a program of yours (:mod:`.crash_at`);
* faulty participant wrappers (:mod:`.participants`): fail, hang or crawl in named phases;
* the kill-and-restart harness (:mod:`.harness`), its workload process (:mod:`.workload`),
  its durable participants (:mod:`.durable`) and the invariant checks (:mod:`.checks`),
  which the project's own crash tests run.

Nothing in the library imports this package: a production process never loads it.
"""

from __future__ import annotations

from .participants import (
    FOREVER,
    AlwaysFail,
    FailTimes,
    Fault,
    FaultyParticipant,
    FaultyStep,
    Hang,
    Slow,
)
from .points import (
    CRASH_POINTS,
    MAINTENANCE_POINTS,
    TRANSACTION_POINTS,
    arm,
    arm_spec,
    disarm,
    hits,
    parse_spec,
)

__all__ = [
    "CRASH_POINTS",
    "FOREVER",
    "MAINTENANCE_POINTS",
    "TRANSACTION_POINTS",
    "AlwaysFail",
    "FailTimes",
    "Fault",
    "FaultyParticipant",
    "FaultyStep",
    "Hang",
    "Slow",
    "arm",
    "arm_spec",
    "disarm",
    "hits",
    "parse_spec",
]
