"""Named crash points: arm them in a test process, and it SIGKILLs itself when one is passed.

The library passes each point of :data:`CRASH_POINTS` through the zero-cost hook of
:mod:`dtc_wal._crash_hooks`. Nothing arms a point but a call in the process that is meant
to die -- :func:`arm`, or :func:`arm_spec` with a ``--crash-at`` value such as
``decision.after-commit-log`` or ``wal.after-sync:2,commit.after-first`` (kill on the n-th
hit, default 1). The environment is never read: a process that is not a test cannot be
killed by a crash point. ``python -m dtc_wal.testing.crash_at SPEC SCRIPT`` arms, then runs
a program of yours. A hit sends SIGKILL to its own process: no atexit handlers, no
``finally`` blocks, no flush -- what is on disk is all that survives, as in a power cut of
the process.
"""

from __future__ import annotations

from .._crash_hooks import (
    ARMED,
    CRASH_POINTS,
    HITS,
    LOCK,
    MAINTENANCE_POINTS,
    TRANSACTION_POINTS,
    hit,
)
from ..errors import InvalidOptionError

__all__ = [
    "ARMED",
    "CRASH_POINTS",
    "MAINTENANCE_POINTS",
    "TRANSACTION_POINTS",
    "arm",
    "arm_spec",
    "disarm",
    "hit",
    "hits",
    "parse_spec",
]


def arm(name: str, on_hit: int = 1) -> None:
    """Kill this process the ``on_hit``-th time ``name`` is passed."""
    if name not in CRASH_POINTS:
        raise InvalidOptionError(f"unknown crash point {name!r}; known: {', '.join(CRASH_POINTS)}")
    if isinstance(on_hit, bool) or not isinstance(on_hit, int) or on_hit < 1:
        raise InvalidOptionError(f"on_hit counts from 1, not {on_hit!r}")
    ARMED[name] = on_hit


def parse_spec(spec: str) -> list[tuple[str, int]]:
    """``"name[:n][,name[:n]...]"`` -> ``[(name, n), ...]``, every name and count checked."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise InvalidOptionError(
            f"crash point spec {spec!r} names no point; give NAME[:N][,NAME[:N]...], "
            f"e.g. decision.after-commit-log or wal.after-sync:2"
        )
    parsed = []
    for part in parts:
        name, colon, count = part.partition(":")
        name = name.strip()
        if name not in CRASH_POINTS:
            raise InvalidOptionError(
                f"unknown crash point {name!r} in {spec!r}; known: {', '.join(CRASH_POINTS)}"
            )
        if not colon:
            parsed.append((name, 1))
        elif count.strip().isdigit() and int(count) >= 1:
            parsed.append((name, int(count)))
        else:
            raise InvalidOptionError(
                f"crash point {part!r}: the count after ':' is the hit that kills, a whole "
                f"number from 1 (e.g. {name}:2)"
            )
    return parsed


def arm_spec(spec: str) -> None:
    """Arm every point of a ``--crash-at`` value (see :func:`parse_spec`); all or none."""
    for name, on_hit in parse_spec(spec):
        arm(name, on_hit)


def disarm() -> None:
    """Disarm every point and forget the hits counted so far."""
    with LOCK:
        ARMED.clear()
        HITS.clear()


def hits() -> dict[str, int]:
    """How often each armed point was passed so far."""
    with LOCK:
        return dict(HITS)
