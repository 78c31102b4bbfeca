"""Event counters a driver keeps for the facade's ``stats()``: thread-safe, one lock."""

from __future__ import annotations

import threading

__all__ = ["Counters"]


class Counters:
    """Thread-safe event counters (one lock: a counter update is a few bytecodes).

    The engine counts ``committed``, ``aborted``, ``incomplete``, ``recovery_passes`` and
    ``recovered``; ``begun`` and ``zombies_reaped`` are the facade's to count.
    """

    NAMES = (
        "begun",
        "committed",
        "aborted",
        "incomplete",
        "zombies_reaped",
        "recovery_passes",
        "recovered",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
