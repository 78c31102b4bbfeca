"""Run a recovery pass's transactions one after another, adding workers when one is slow.

Recovering a transaction is either quick CPU work (participants that answer at once) or a
wait on a participant (a network round trip, a hang until ``phase2_timeout``). Threads
only help the second kind: with the GIL, two threads doing quick CPU work run slower than
one (about 30% slower re-driving no-op participants on two cores). So the calling thread
takes transactions in log order by itself, and a watchdog adds a helper thread -- up to
``workers - 1`` of them, pulling from the same queue -- whenever it finds every worker on
the same transaction at two ticks in a row. A tick counts only when the watchdog woke on time:
a late wake-up means Python code kept the GIL (or the garbage collector ran), so the
workers were busy computing, not waiting, and a helper would not help. A pass of quick
transactions stays on one thread; a hanging participant holds up only the transactions it
is in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

__all__ = ["TICK", "run_adaptive"]

TICK = 0.005
"""The watchdog's period: when every worker is seen on one transaction at two on-time
ticks in a row (so for at least this long), a helper starts."""

V = TypeVar("V")
R = TypeVar("R")


class _Pass(Generic[V, R]):
    def __init__(self, items: Sequence[V], work: Callable[[V], R]) -> None:
        self.items = items
        self.work = work
        self.lock = threading.Lock()
        self.next = 0
        self.done = 0
        self.results: list[R | None] = [None] * len(items)
        self.errors: list[BaseException | None] = [None] * len(items)
        self.current: dict[int, int] = {}  # worker id -> index of the item it is on
        self.finished = threading.Event()

    def take(self, worker: int) -> int | None:
        with self.lock:
            if self.next >= len(self.items):
                self.current.pop(worker, None)
                return None
            index = self.next
            self.next += 1
            self.current[worker] = index
            return index

    def stop(self) -> None:
        """Let no worker take another item (the caller was interrupted)."""
        with self.lock:
            self.next = len(self.items)

    def run(
        self,
        worker: int,
        after_each: Callable[[], None] | None = None,
        catch: type[BaseException] = BaseException,
    ) -> None:
        while (index := self.take(worker)) is not None:
            try:
                self.results[index] = self.work(self.items[index])
            except catch as exc:  # raised by the caller once every item ran
                self.errors[index] = exc
            with self.lock:
                self.done += 1
            if after_each is not None:
                after_each()

    def busy(self) -> dict[int, int] | None:
        """Which item each worker is on; None when no item is left for a helper."""
        with self.lock:
            if self.next >= len(self.items):
                return None
            return dict(self.current)


def run_adaptive(
    items: Sequence[V],
    work: Callable[[V], R],
    workers: int,
    progress: Callable[[int, int], None] | None = None,
    tick: float = TICK,
) -> list[R]:
    """``[work(item) for item in items]``, on up to ``workers`` threads (this one first).

    ``progress(done, total)`` is called in this thread with every count from 1 to the
    total, in order -- in a burst when this thread was itself waiting on a slow item.
    When ``work`` raised for some items, the others still run; then the first such error,
    in item order, is raised.
    """
    total = len(items)
    state: _Pass[V, R] = _Pass(items, work)
    helpers: list[threading.Thread] = []
    reported = 0

    def report() -> None:
        nonlocal reported
        if progress is None:
            return
        with state.lock:
            done = state.done
        while reported < done:
            reported += 1
            progress(reported, total)

    def watchdog() -> None:
        seen: dict[int, int] = {}
        last = time.monotonic()
        while not state.finished.wait(tick):
            now = time.monotonic()
            on_time, last = now - last < 1.5 * tick, now
            busy = state.busy() if on_time else None
            # every worker on the same item as last tick: none is getting anywhere
            stuck = bool(busy) and all(seen.get(w) == i for w, i in (busy or {}).items())
            seen = busy or {}
            if stuck and len(helpers) < workers - 1:
                helper = threading.Thread(
                    target=state.run,
                    args=(len(helpers) + 1,),
                    name=f"dtc-recovery-worker-{len(helpers) + 1}",
                    daemon=True,
                )
                helpers.append(helper)
                helper.start()

    guard = None
    if workers > 1 and total > 1:
        guard = threading.Thread(target=watchdog, name="dtc-recovery-watchdog", daemon=True)
        guard.start()
    try:
        # This thread lets KeyboardInterrupt and SystemExit through: no new item is taken.
        state.run(0, report, catch=Exception)
    except BaseException:
        state.stop()
        raise
    finally:
        state.finished.set()
        if guard is not None:
            guard.join()
        for helper in helpers:  # the watchdog has stopped: the list is final
            helper.join()
    report()
    for error in state.errors:
        if error is not None:
            raise error
    return cast("list[R]", state.results)  # every item ran without an error
