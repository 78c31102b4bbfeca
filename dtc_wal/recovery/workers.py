"""Run a recovery pass's transactions one after another, adding workers when one is slow.

Recovering a transaction is either quick CPU work (participants that answer at once) or a
wait on a participant (a network round trip, a hang until ``phase2_timeout``). Threads
only help the second kind: with the GIL, two threads doing quick CPU work run slower than
one (about 30% slower re-driving no-op participants on two cores). So the calling thread
takes transactions in log order by itself, and a watchdog adds a helper thread -- up to
``workers - 1`` of them, pulling from the same queue -- at every tick in which the process
used less than half a core of CPU while transactions were left: then the workers are
waiting (on participants, timeouts, the disk), not computing, and another thread can make
progress. A pass of quick transactions keeps the process busy and stays on one thread; a
hanging participant holds up only the transactions it is in; participants behind network
round trips get as many threads as keep half a core busy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

from ..options import count

__all__ = ["BUSY", "TICK", "check_workers", "run_adaptive"]

TICK = 0.005
"""The watchdog's period; at most one helper starts per tick."""

BUSY = 0.5
"""CPU seconds per wall second (of the whole process) from which the pass counts as
computing: no helper is added while the process is at least this busy."""


def check_workers(value: object, option: str = "recovery_workers") -> int:
    """``value`` as a worker count; InvalidOptionError naming ``option`` unless an int >= 1."""
    return count(option, value, 1)


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
        self.finished = threading.Event()

    def take(self) -> int | None:
        with self.lock:
            if self.next >= len(self.items):
                return None
            index = self.next
            self.next += 1
            return index

    def stop(self) -> None:
        """Let no worker take another item (the caller was interrupted)."""
        with self.lock:
            self.next = len(self.items)

    def run(
        self,
        after_each: Callable[[], None] | None = None,
        catch: type[BaseException] = BaseException,
    ) -> None:
        while (index := self.take()) is not None:
            try:
                self.results[index] = self.work(self.items[index])
            except catch as exc:  # raised by the caller once every item ran
                self.errors[index] = exc
            with self.lock:
                self.done += 1
            if after_each is not None:
                after_each()

    def left(self) -> bool:
        """Whether items are left for a helper to take."""
        with self.lock:
            return self.next < len(self.items)


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
        cpu, wall = time.process_time(), time.monotonic()
        while not state.finished.wait(tick):
            cpu_now, wall_now = time.process_time(), time.monotonic()
            waiting = cpu_now - cpu < BUSY * (wall_now - wall)
            cpu, wall = cpu_now, wall_now
            if waiting and len(helpers) < workers - 1 and state.left():
                helper = threading.Thread(
                    target=state.run,
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
        state.run(report, catch=Exception)
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
