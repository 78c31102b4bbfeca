"""Named crash points: real SIGKILL of the current process, no-ops unless switched on.

The library calls them as ``if points.ARMED: points.hit("name")`` so that a disabled point
costs one attribute lookup and a dict truth test. Switch them on with the environment
variable ``DTC_CRASH_AT=name[:n]`` (kill on the n-th hit, default 1; several separated by
commas) or with :func:`arm`. A hit sends SIGKILL to its own process: no atexit handlers, no
``finally`` blocks, no flush -- what is on disk is all that survives, as in a power cut of
the process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from ..errors import InvalidOptionError

__all__ = ["ARMED", "CRASH_POINTS", "arm", "disarm", "hit", "hits"]

log = logging.getLogger("dtc_wal.fault_injection")

#: Every crash point the library passes, in protocol order. The crash matrix kills at each.
CRASH_POINTS: tuple[str, ...] = (
    "wal.before-sync",  # a batch is written into LMDB but its transaction not committed
    "wal.after-sync",  # a batch is committed and synced; waiters not yet woken
    "begin.after-log",  # begun record durable, nothing enlisted
    "enlist.after-log",  # enlisted record durable, nothing sent
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

ARMED: dict[str, int] = {}
_hits: dict[str, int] = {}
_lock = threading.Lock()


def arm(name: str, on_hit: int = 1) -> None:
    """Kill this process the ``on_hit``-th time ``name`` is passed."""
    if name not in CRASH_POINTS:
        raise InvalidOptionError(f"unknown crash point {name!r}; known: {', '.join(CRASH_POINTS)}")
    if on_hit < 1:
        raise InvalidOptionError("on_hit counts from 1")
    ARMED[name] = on_hit


def disarm() -> None:
    ARMED.clear()
    _hits.clear()


def hits() -> dict[str, int]:
    """How often each armed point was passed so far."""
    return dict(_hits)


def hit(name: str) -> None:
    """Called by the library at point ``name``; kills the process when armed for this hit."""
    target = ARMED.get(name)
    if target is None:
        return
    with _lock:
        count = _hits.get(name, 0) + 1
        _hits[name] = count
    if count == target:
        log.warning("crash point %s reached (hit %d): SIGKILL", name, count)
        os.kill(os.getpid(), signal.SIGKILL)


def _arm_from_environment() -> None:
    spec = os.environ.get("DTC_CRASH_AT", "").strip()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        arm(name, int(count) if count else 1)


_arm_from_environment()
