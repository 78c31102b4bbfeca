"""Fast in-process participants are called in the caller's thread; slow ones in the pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dtc_wal import TransactionCoordinator
from dtc_wal.drivers.inline import InlineTracker


class ThreadSpy:
    """Records the thread each call ran on; sleeps ``delay`` in prepare."""

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.threads: list[tuple[str, str]] = []

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.threads.append(("prepare", threading.current_thread().name))
        if self.delay:
            time.sleep(self.delay)

    def commit(self, transaction_id: str) -> None:
        self.threads.append(("commit", threading.current_thread().name))

    def rollback(self, transaction_id: str) -> None:
        self.threads.append(("rollback", threading.current_thread().name))


def run(coord: TransactionCoordinator, parts: list[ThreadSpy], n: int) -> None:
    for _ in range(n):
        txid = coord.begin_transaction()
        for p in parts:
            coord.enlist_participant(txid, p)
        coord.commit_transaction(txid)


def test_fast_participants_move_into_the_callers_thread(tmp_path: Path) -> None:
    parts = [ThreadSpy("a"), ThreadSpy("b"), ThreadSpy("c")]
    me = threading.current_thread().name
    # a generous threshold: a loaded CI machine must not make a no-op call look slow
    with TransactionCoordinator(tmp_path, recovery_interval=None, inline_threshold=0.05) as c:
        run(c, parts, 20)
    for p in parts:
        first = p.threads[:4]  # the first calls are measured in the pool
        last = p.threads[-4:]
        assert all(thread != me for _, thread in first)
        assert all(thread == me for _, thread in last), p.threads


def test_slow_participant_stays_in_the_pool(tmp_path: Path) -> None:
    fast, slow = ThreadSpy("fast"), ThreadSpy("slow", delay=0.06)
    me = threading.current_thread().name
    with TransactionCoordinator(tmp_path, recovery_interval=None, inline_threshold=0.05) as c:
        run(c, [fast, slow], 12)
    assert all(thread != me for phase, thread in slow.threads if phase == "prepare")
    assert fast.threads[-1][1] == me


def test_switched_off_every_call_uses_the_pool(tmp_path: Path) -> None:
    parts = [ThreadSpy("a"), ThreadSpy("b")]
    me = threading.current_thread().name
    with TransactionCoordinator(tmp_path, recovery_interval=None, inline_threshold=None) as c:
        run(c, parts, 20)
    assert all(thread != me for p in parts for _, thread in p.threads)


def test_one_slow_call_demotes_until_many_fast_ones() -> None:
    tracker = InlineTracker(0.001, promote_after=4)
    for _ in range(4):
        tracker.record("k", 0.0)
    assert tracker.is_fast("k")
    tracker.record("k", 0.5)
    assert not tracker.is_fast("k")
    for _ in range(15):
        tracker.record("k", 0.0)
    assert not tracker.is_fast("k")  # 4 * promote_after fast calls are needed again
    tracker.record("k", 0.0)
    assert tracker.is_fast("k")
    assert not InlineTracker(None).is_fast("k")
