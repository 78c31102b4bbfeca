"""Run a recovery pass's transactions one after another, adding workers when one is slow.

Recovering a transaction is either quick CPU work (participants that answer at once) or a
wait on a participant (a network round trip, a hang until ``phase2_timeout``). Threads
only help the second kind: with the GIL, two threads doing quick CPU work run slower than
one (about 30% slower re-driving no-op participants on two cores). So the calling thread
takes transactions in log order by itself, and a watchdog adds a helper thread -- up to
``workers - 1`` of them, pulling from the same queue -- whenever some worker has been on one
transaction for a whole tick. A pass of quick transactions stays on one thread; a hanging
participant holds up only the transactions it is in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

__all__ = ["TICK", "run_adaptive"]

TICK = 0.005
"""Seconds a worker may spend on one transaction before the watchdog adds a helper."""

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
        self.busy_since: dict[int, float] = {}  # worker id -> when it took its item
        self.finished = threading.Event()

    def take(self, worker: int) -> int | None:
        with self.lock:
            if self.next >= len(self.items):
                self.busy_since.pop(worker, None)
                return None
            index = self.next
            self.next += 1
            self.busy_since[worker] = time.monotonic()
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

    def slow(self, tick: float) -> bool:
        """Whether a worker has been on its current item for at least ``tick`` and items
        are left for a helper to take."""
        now = time.monotonic()
        with self.lock:
            if self.next >= len(self.items):
                return False
            return any(now - since >= tick for since in self.busy_since.values())


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
        while not state.finished.wait(tick):
            if len(helpers) < workers - 1 and state.slow(tick):
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
