"""The idempotency barrier: duplicates, null compensation, hanging, the prepare/rollback race,
durability across a reopen and across a real SIGKILL, and use through the coordinator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dtc_wal import ManualClock, TransactionAborted, TransactionCoordinator, VoteNo
from dtc_wal.participants import (
    BarrierConflictError,
    BarrierError,
    BarrierLockedError,
    BarrierState,
    IdempotencyBarrier,
)

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    """A participant and saga step that records every call it receives."""

    def __init__(self, name: str = "recorder", fail_prepare: int = 0) -> None:
        self.name = name
        self.calls: list[tuple[str, str]] = []
        self.fail_prepare = fail_prepare
        self._lock = threading.Lock()

    def _add(self, what: str, txid: str) -> None:
        with self._lock:
            self.calls.append((what, txid))

    def count(self, what: str, txid: str) -> int:
        with self._lock:
            return self.calls.count((what, txid))

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self._add("prepare", transaction_id)
        if self.fail_prepare:
            self.fail_prepare -= 1
            raise ConnectionError("prepare failed on purpose")

    def commit(self, transaction_id: str) -> None:
        self._add("commit", transaction_id)

    def rollback(self, transaction_id: str) -> None:
        self._add("rollback", transaction_id)

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self._add("action", transaction_id)

    def compensate(self, transaction_id: str) -> None:
        self._add("compensate", transaction_id)


@pytest.fixture
def barrier_path(tmp_path: Path) -> Path:
    return tmp_path / "barrier"


@pytest.fixture
def barrier(barrier_path: Path) -> Iterator[IdempotencyBarrier]:
    with IdempotencyBarrier(barrier_path) as opened:
        yield opened


def txid() -> str:
    return str(uuid.uuid4())


# -- duplicates --------------------------------------------------------------------------


def test_duplicate_commit_runs_once(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    guarded = barrier.guard(inner)
    t = txid()
    guarded.prepare(t, {})
    guarded.commit(t)
    guarded.commit(t)
    assert inner.calls == [("prepare", t), ("commit", t)]
    assert barrier.state(t) is BarrierState.COMMITTED


def test_duplicate_rollback_after_prepare_runs_once(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    guarded = barrier.guard(inner)
    t = txid()
    guarded.prepare(t, {})
    guarded.rollback(t)
    guarded.rollback(t)
    assert inner.calls == [("prepare", t), ("rollback", t)]
    assert barrier.state(t) is BarrierState.ROLLED_BACK


def test_duplicate_prepare_votes_yes_without_running_again(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    guarded = barrier.guard(inner)
    t = txid()
    guarded.prepare(t, {})
    guarded.prepare(t, {})
    assert inner.calls == [("prepare", t)]
    assert barrier.state(t) is BarrierState.PREPARED


# -- null compensation and hanging ---------------------------------------------------------


def test_null_rollback_is_recorded_and_runs_nothing(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    guarded = barrier.guard(inner)
    t = txid()
    guarded.rollback(t)
    guarded.rollback(t)
    assert inner.calls == []
    assert barrier.state(t) is BarrierState.NULL_ROLLBACK


def test_hanging_prepare_after_rollback_votes_no(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    guarded = barrier.guard(inner)
    t = txid()
    guarded.rollback(t)
    with pytest.raises(VoteNo, match="rollback was already recorded"):
        guarded.prepare(t, {"amount": 5})
    assert inner.calls == []
    assert barrier.state(t) is BarrierState.NULL_ROLLBACK


def test_failed_prepare_leaves_a_claim_so_rollback_reaches_the_participant(
    barrier: IdempotencyBarrier,
) -> None:
    inner = Recorder(fail_prepare=1)
    guarded = barrier.guard(inner)
    t = txid()
    with pytest.raises(ConnectionError):
        guarded.prepare(t, {})
    assert barrier.state(t) is BarrierState.PREPARING
    guarded.rollback(t)
    assert inner.calls == [("prepare", t), ("rollback", t)]
    assert barrier.state(t) is BarrierState.ROLLED_BACK


def test_retried_prepare_after_a_failure_runs_again(barrier: IdempotencyBarrier) -> None:
    inner = Recorder(fail_prepare=1)
    guarded = barrier.guard(inner)
    t = txid()
    with pytest.raises(ConnectionError):
        guarded.prepare(t, {})
    guarded.prepare(t, {})
    guarded.commit(t)
    assert inner.calls == [("prepare", t), ("prepare", t), ("commit", t)]


def test_claim_is_durable_before_the_participant_runs(barrier: IdempotencyBarrier) -> None:
    seen: list[BarrierState | None] = []

    class Probe(Recorder):
        def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
            seen.append(barrier.state(transaction_id))

    t = txid()
    barrier.guard(Probe()).prepare(t, {})
    assert seen == [BarrierState.PREPARING]


# -- contradictions --------------------------------------------------------------------------


def test_commit_after_rollback_is_a_conflict(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    guarded = barrier.guard(inner)
    t = txid()
    guarded.rollback(t)
    with pytest.raises(BarrierConflictError, match="null-rollback"):
        guarded.commit(t)
    assert inner.calls == []


def test_rollback_after_commit_is_a_conflict(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    guarded = barrier.guard(inner)
    t = txid()
    guarded.prepare(t, {})
    guarded.commit(t)
    with pytest.raises(BarrierConflictError, match="recorded a commit"):
        guarded.rollback(t)
    assert inner.calls == [("prepare", t), ("commit", t)]


def test_commit_without_a_recorded_prepare_is_passed_on(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    t = txid()
    barrier.guard(inner).commit(t)
    assert inner.calls == [("commit", t)]
    assert barrier.state(t) is BarrierState.COMMITTED


# -- the race of prepare and rollback ------------------------------------------------------


def race(calls: list[tuple[str, object]], flip: bool) -> None:
    """Start one thread per call and release them at once; ``flip`` alternates start order."""
    ready, go = threading.Barrier(len(calls) + 1), threading.Event()

    def run(call: object) -> None:
        ready.wait()
        go.wait()
        call()  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(call,)) for _, call in calls]
    for thread in reversed(threads) if flip else threads:
        thread.start()
    ready.wait()
    go.set()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("duplicates", [1, 2], ids=["two-threads", "four-threads"])
def test_prepare_and_rollback_racing(barrier: IdempotencyBarrier, duplicates: int) -> None:
    inner = Recorder()
    guarded = barrier.guard(inner)
    seen: dict[BarrierState | None, int] = {}
    for i in range(300):
        t = txid()
        votes: list[str] = []
        rollbacks: list[str] = []

        def prepare(t: str = t, votes: list[str] = votes) -> None:
            try:
                guarded.prepare(t, {})
                votes.append("yes")
            except VoteNo:
                votes.append("no")

        def rollback(t: str = t, rollbacks: list[str] = rollbacks) -> None:
            guarded.rollback(t)
            rollbacks.append("done")

        race([("prepare", prepare), ("rollback", rollback)] * duplicates, flip=bool(i % 2))
        state = barrier.state(t)
        seen[state] = seen.get(state, 0) + 1
        assert rollbacks == ["done"] * duplicates
        assert inner.count("rollback", t) <= 1
        assert inner.count("prepare", t) <= 1
        if "yes" in votes:
            # A yes vote is always followed by a real rollback of the prepared work ...
            assert state is BarrierState.ROLLED_BACK
            assert inner.calls.index(("prepare", t)) < inner.calls.index(("rollback", t))
            assert inner.count("prepare", t) == inner.count("rollback", t) == 1
        else:
            # ... never by "rolled back before": then the late prepare ran nothing.
            assert votes == ["no"] * duplicates
            assert state is BarrierState.NULL_ROLLBACK
            assert inner.count("prepare", t) == 0
            assert inner.count("rollback", t) == 0
    assert set(seen) <= {BarrierState.ROLLED_BACK, BarrierState.NULL_ROLLBACK}
    assert len(barrier._txid_locks) == 0  # every per-txid lock was dropped again


def test_rollback_waits_for_a_prepare_in_progress(barrier: IdempotencyBarrier) -> None:
    entered, release = threading.Event(), threading.Event()
    events: list[str] = []

    class Slow(Recorder):
        def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
            events.append("prepare started")
            entered.set()
            release.wait()
            events.append("prepare finished")

        def rollback(self, transaction_id: str) -> None:
            events.append("rollback")

    guarded = barrier.guard(Slow())
    t = txid()
    preparing = threading.Thread(target=guarded.prepare, args=(t, {}))
    preparing.start()
    entered.wait()
    rolling_back = threading.Thread(target=guarded.rollback, args=(t,))
    rolling_back.start()
    # Wait until the rollback is queued on the txid's lock behind the prepare.
    while True:
        with barrier._txid_locks._guard:
            entry = barrier._txid_locks._locks.get(t)
            if entry is not None and entry[1][0] == 2:
                break
        threading.Event().wait(0.001)
    release.set()
    preparing.join()
    rolling_back.join()
    assert events == ["prepare started", "prepare finished", "rollback"]
    assert barrier.state(t) is BarrierState.ROLLED_BACK


# -- durability ------------------------------------------------------------------------------


def test_records_survive_a_reopen(barrier_path: Path) -> None:
    inner = Recorder()
    committed, refused = txid(), txid()
    with IdempotencyBarrier(barrier_path) as barrier:
        guarded = barrier.guard(inner)
        guarded.prepare(committed, {})
        guarded.commit(committed)
        guarded.rollback(refused)
    with IdempotencyBarrier(barrier_path) as barrier:
        guarded = barrier.guard(inner)
        guarded.commit(committed)
        with pytest.raises(VoteNo):
            guarded.prepare(refused, {})
        assert barrier.state(committed) is BarrierState.COMMITTED
        assert barrier.state(refused) is BarrierState.NULL_ROLLBACK
    assert inner.calls == [("prepare", committed), ("commit", committed)]


KILL_DURING_PREPARE = """
import os, signal, sys
from dtc_wal.participants import IdempotencyBarrier

class DiesInPrepare:
    def prepare(self, txid, data):
        os.kill(os.getpid(), signal.SIGKILL)
    def commit(self, txid): pass
    def rollback(self, txid): pass

barrier = IdempotencyBarrier(sys.argv[1])
barrier.guard(DiesInPrepare()).prepare(sys.argv[2], {})
"""


def test_kill_during_prepare_then_rollback_reaches_the_participant(barrier_path: Path) -> None:
    t = txid()
    proc = subprocess.run(
        [sys.executable, "-c", KILL_DURING_PREPARE, str(barrier_path), t],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    inner = Recorder()
    with IdempotencyBarrier(barrier_path) as barrier:
        assert barrier.state(t) is BarrierState.PREPARING
        barrier.guard(inner).rollback(t)
        assert barrier.state(t) is BarrierState.ROLLED_BACK
    # Not mistaken for a null compensation: the participant may hold prepared work.
    assert inner.calls == [("rollback", t)]


def test_second_open_of_the_same_barrier_is_refused(barrier: IdempotencyBarrier) -> None:
    with pytest.raises(BarrierLockedError, match="held by another process"):
        IdempotencyBarrier(barrier.path)


def test_closed_barrier_refuses_calls(barrier_path: Path) -> None:
    barrier = IdempotencyBarrier(barrier_path)
    guarded = barrier.guard(Recorder())
    barrier.close()
    barrier.close()
    with pytest.raises(BarrierError, match="closed"):
        guarded.prepare(txid(), {})


def test_damaged_record_is_reported(barrier: IdempotencyBarrier) -> None:
    t = txid()
    with barrier._env.begin(write=True) as txn:
        txn.put(t.encode(), b"\xc1not msgpack")
    with pytest.raises(BarrierError, match="cannot be read"):
        barrier.guard(Recorder()).commit(t)


def test_map_grows_when_full(tmp_path: Path) -> None:
    inner = Recorder()
    with IdempotencyBarrier(tmp_path / "b", map_size=64 * 1024) as barrier:
        guarded = barrier.guard(inner)
        ids = [txid() for _ in range(3000)]
        for t in ids:
            guarded.rollback(t)
        assert barrier._env.info()["map_size"] > 64 * 1024
        assert all(barrier.state(t) is BarrierState.NULL_ROLLBACK for t in ids)


def test_full_barrier_at_its_maximum_says_what_to_do(tmp_path: Path) -> None:
    with IdempotencyBarrier(tmp_path / "b", map_size=64 * 1024, max_map_size=64 * 1024) as b:
        guarded = b.guard(Recorder())
        with pytest.raises(BarrierError, match="purge"):
            for _ in range(10_000):
                guarded.rollback(txid())


def test_purge_removes_only_old_finished_records(barrier_path: Path) -> None:
    clock = ManualClock()
    with IdempotencyBarrier(barrier_path, clock=clock) as barrier:
        guarded = barrier.guard(Recorder())
        old_done, old_open, new_done = txid(), txid(), txid()
        guarded.prepare(old_done, {})
        guarded.commit(old_done)
        guarded.prepare(old_open, {})
        clock.advance(3600)
        guarded.rollback(new_done)
        assert barrier.purge(older_than=1800) == 1
        assert barrier.state(old_done) is None
        assert barrier.state(old_open) is BarrierState.PREPARED
        assert barrier.state(new_done) is BarrierState.NULL_ROLLBACK


# -- saga steps ------------------------------------------------------------------------------


def test_saga_step_action_once_and_compensation_once(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    step = barrier.guard_step(inner)
    t = txid()
    step.action(t, {})
    step.action(t, {})
    step.compensate(t)
    step.compensate(t)
    assert inner.calls == [("action", t), ("compensate", t)]


def test_saga_null_compensation_then_late_action_is_refused(barrier: IdempotencyBarrier) -> None:
    inner = Recorder()
    step = barrier.guard_step(inner)
    t = txid()
    step.compensate(t)
    with pytest.raises(VoteNo):
        step.action(t, {})
    assert inner.calls == []
    assert barrier.state(t) is BarrierState.NULL_ROLLBACK


def test_guard_rejects_objects_that_are_not_participants(barrier: IdempotencyBarrier) -> None:
    with pytest.raises(TypeError, match="not a participant"):
        barrier.guard(object())
    with pytest.raises(TypeError, match="not a saga step"):
        barrier.guard_step(object())


# -- through the coordinator -----------------------------------------------------------------


def test_guarded_participants_through_the_coordinator(
    tmp_path: Path, barrier: IdempotencyBarrier
) -> None:
    payment, stock = Recorder("payment"), Recorder("stock")
    with (
        IdempotencyBarrier(tmp_path / "stock-barrier") as stock_barrier,
        TransactionCoordinator(tmp_path / "log", backoff_initial=0.001) as coord,
    ):
        t = coord.begin_transaction()
        assert coord.enlist_participant(t, barrier.guard(payment)) == "payment"
        coord.enlist_participant(t, stock_barrier.guard(stock))
        coord.commit_transaction(t)
        # A duplicate delivery (e.g. by recovery after a lost acknowledgement) is a no-op.
        barrier.guard(payment).commit(t)

        refused = coord.begin_transaction()
        barrier.guard(payment).rollback(refused)  # rollback overtook the prepare
        coord.enlist_participant(refused, barrier.guard(payment))
        coord.enlist_participant(refused, stock_barrier.guard(stock))
        with pytest.raises(TransactionAborted, match="voted no"):
            coord.commit_transaction(refused)
    assert payment.calls == [("prepare", t), ("commit", t)]
    assert stock.calls == [
        ("prepare", t),
        ("commit", t),
        ("prepare", refused),
        ("rollback", refused),
    ]


def test_docstring_example_holds() -> None:
    import doctest

    from dtc_wal.participants import barrier as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
