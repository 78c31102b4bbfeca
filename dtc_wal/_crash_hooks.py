"""The crash points' hook: what the library's hot paths call, and nothing else.

The library passes named points as ``if points.ARMED: points.hit("name")`` (this module
imported as ``points``), so a disarmed point costs one attribute lookup and a dict truth
test. Nothing here reads the environment or arms a point: only an explicit call does
(:func:`dtc_wal.testing.arm`, which a test process makes), so a production process is
never killed by a point, whatever its environment holds.

A hit of an armed point sends SIGKILL to its own process: no atexit handlers, no
``finally`` blocks, no flush -- what is on disk is all that survives, as in a power cut.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

__all__ = [
    "ARMED",
    "CRASH_POINTS",
    "HITS",
    "LOCK",
    "MAINTENANCE_POINTS",
    "TRANSACTION_POINTS",
    "hit",
]

log = logging.getLogger("dtc_wal.testing")

#: The points a transaction passes, in protocol order (dtc_wal/drivers/crash_points.py,
#: dtc_wal/log/group_commit.py). The crash matrix kills at each. Nothing is logged at begin
#: or enlist (the members are named in ``Opened``, written at commit), so format 1's
#: ``begin.after-log`` and ``enlist.after-log`` are gone.
TRANSACTION_POINTS: tuple[str, ...] = (
    "wal.before-sync",  # a batch is written into LMDB but its transaction not committed
    "wal.after-sync",  # a batch is committed and synced; waiters not yet woken
    "prepare.before-send",  # about to send the first prepare
    "prepare.after-first",  # one participant prepared, others may not be
    "prepare.after-all",  # every participant voted yes; no decision on disk
    "decision.after-commit-log",  # decided-commit durable, no commit sent
    "commit.after-first",  # commit reached the first participant only
    "commit.after-all",  # every participant committed; completion not logged
    "decision.after-abort-log",  # decided-abort written, no rollback sent
    "rollback.after-first",  # rollback reached the first participant only
    "rollback.after-all",  # every participant rolled back; completion not logged
    "saga.after-step",  # a saga step ran; its record may not be on disk
    "saga.after-step-log",  # a saga step's record is durable; the next step not started
    "saga.after-compensation",  # one compensation ran
    "complete.after-log",  # completed record written
)

#: The points of whole-log maintenance (`dtc upgrade`), killed at by their own tests.
MAINTENANCE_POINTS: tuple[str, ...] = (
    "upgrade.before-swap",  # `dtc upgrade`: the new log is complete and verified, not in place
    "upgrade.after-swap",  # `dtc upgrade --in-place`: the new log is in place, the original
    # beside it under the working name, not yet renamed <log>.format1-<time>
)

#: Every crash point the library passes.
CRASH_POINTS: tuple[str, ...] = TRANSACTION_POINTS + MAINTENANCE_POINTS

ARMED: dict[str, int] = {}
"""Armed point -> the hit that kills. Empty unless a test armed a point in this process."""
HITS: dict[str, int] = {}
"""Armed point -> how often it was passed so far."""
LOCK = threading.Lock()


def hit(name: str) -> None:
    """Called by the library at point ``name``; kills the process when armed for this hit."""
    target = ARMED.get(name)
    if target is None:
        return
    with LOCK:
        count = HITS.get(name, 0) + 1
        HITS[name] = count
    if count == target:
        log.warning("crash point %s reached (hit %d): SIGKILL", name, count)
        os.kill(os.getpid(), signal.SIGKILL)
