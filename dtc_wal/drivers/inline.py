"""Which participant calls may run in the caller's thread instead of the pool.

Sending ``prepare`` to three in-process participants through a thread pool costs more than
the calls themselves (a hand-off and a wake-up each). The tracker watches how long calls of
each kind of participant take; after ``promote_after`` consecutive calls under
``threshold`` seconds, calls of that kind run inline in the caller's thread, one after the
other. One slow call demotes the kind back to the pool until it has shown
``4 * promote_after`` fast calls again.

The trade-off (docs/protocol.md, "Inline calls"): a call running inline cannot be abandoned
at its timeout -- the caller waits for it to return; it is then judged on its result. Slow,
remote or blocking participants never qualify, because their calls are never fast. Switch
it off with ``TransactionCoordinator(inline_threshold=None)``.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["InlineTracker"]


class InlineTracker:
    def __init__(self, threshold: float | None, promote_after: int = 8) -> None:
        self.threshold = threshold
        self.promote_after = promote_after
        self._fast: dict[Hashable, int] = {}  # key -> consecutive fast calls (negative: debt)

    def is_fast(self, key: Hashable) -> bool:
        return self.threshold is not None and self._fast.get(key, 0) >= self.promote_after

    def record(self, key: Hashable, seconds: float) -> None:
        if self.threshold is None:
            return
        if seconds < self.threshold:
            self._fast[key] = self._fast.get(key, 0) + 1
        else:  # races between threads only blur the count; the rule stays conservative
            self._fast[key] = -3 * self.promote_after
