"""commit_transaction(wait=False): return at the durable decision; phase two in the
background, batched through commit_many where a participant offers it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until

from dtc_wal import CommitHandle, TransactionCoordinator, TxState
from dtc_wal.errors import (
    CommitIncompleteError,
    CoordinatorClosedError,
    TransactionAborted,
    VoteNo,
)
from dtc_wal.protocol import Decided, Outcome


class Shared:
    """One resource enlisted in many transactions; can commit many at once."""

    def __init__(self, name: str, batch: bool = True, fail_commit: bool = False) -> None:
        self.name = name
        self.batch = batch
        self.fail_commit = fail_commit
        self.prepared: list[str] = []
        self.committed: list[str] = []
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        with self.lock:
            self.prepared.append(transaction_id)

    def commit(self, transaction_id: str) -> None:
        assert self.gate.wait(10)
        if self.fail_commit:
            raise ConnectionError("down")
        with self.lock:
            self.committed.append(transaction_id)

    def rollback(self, transaction_id: str) -> None:
        pass


class Batching(Shared):
    def commit_many(self, transaction_ids: list[str]) -> None:
        assert self.gate.wait(10)
        with self.lock:
            self.batches.append(list(transaction_ids))
            self.committed.extend(transaction_ids)

    def rollback_many(self, transaction_ids: list[str]) -> None:
        pass


def coordinator(path: Path, **options: Any) -> TransactionCoordinator:
    return TransactionCoordinator(path, recovery_interval=None, **options)


def start(coord: TransactionCoordinator, *parts: Any) -> str:
    txid = coord.begin_transaction()
    for p in parts:
        coord.enlist_participant(txid, p)
    return txid


def test_returns_at_the_durable_decision_then_completes(tmp_path: Path) -> None:
    a, b = Shared("a"), Shared("b")
    a.gate.clear()  # phase two cannot finish until the test says so
    with coordinator(tmp_path) as coord:
        txid = start(coord, a, b)
        handle = coord.commit_transaction(txid, wait=False)
        assert isinstance(handle, CommitHandle)
        assert not handle.done()
        # durable before the return: in the log without a flush (what the writer committed)
        found = coord.log.read(txid)
        assert found is not None
        decisions = [r for r in found.records if isinstance(r, Decided)]
        assert [d.outcome for d in decisions] == [Outcome.COMMIT]
        with pytest.raises(TimeoutError):
            handle.wait(0.05)
        a.gate.set()
        handle.wait(10)
        assert handle.done()
        assert coord.state(txid) is TxState.COMMITTED
    assert a.committed == b.committed == [txid]


def test_one_round_sends_one_commit_many_per_participant(tmp_path: Path) -> None:
    shared, first = Batching("shared"), Shared("first")
    first.gate.clear()  # hold the completer's first round
    with coordinator(tmp_path) as coord:
        blocker = start(coord, first, Shared("other"))
        held = coord.commit_transaction(blocker, wait=False)
        txids = [start(coord, shared, Shared(f"own-{i}")) for i in range(5)]
        handles = [coord.commit_transaction(t, wait=False) for t in txids]
        first.gate.set()
        held.wait(10)
        for h in handles:
            h.wait(10)
        assert all(coord.state(t) is TxState.COMMITTED for t in txids)
    assert sorted(shared.committed) == sorted(txids)
    assert shared.batches == [txids]  # queued during the first round: one call for all


def test_unacknowledged_commit_is_reported_and_left_to_recovery(tmp_path: Path) -> None:
    bad = Shared("bad", fail_commit=True)
    with coordinator(tmp_path, max_retries=1, backoff_initial=0.001) as coord:
        txid = start(coord, Shared("good"), bad)
        handle = coord.commit_transaction(txid, wait=False)
        with pytest.raises(CommitIncompleteError, match="bad"):
            handle.wait(10)
        assert coord.state(txid) is TxState.DECIDED_COMMIT  # never flips
        assert [d.participant for d in coord.in_doubt()] == ["bad"]
        bad.fail_commit = False
        report = coord.recover_now()
        assert report.finished == [txid]
        assert coord.state(txid) is TxState.COMMITTED


def test_abort_still_raises_before_returning(tmp_path: Path) -> None:
    class No(Shared):
        def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
            raise VoteNo("no")

    with coordinator(tmp_path) as coord:
        txid = start(coord, Shared("a"), No("no"))
        with pytest.raises(TransactionAborted):
            coord.commit_transaction(txid, wait=False)


def test_close_finishes_queued_phase_two(tmp_path: Path) -> None:
    a = Shared("a")
    coord = coordinator(tmp_path)
    handles = [coord.commit_transaction(start(coord, a, Shared("b")), wait=False) for _ in range(5)]
    coord.close()
    assert all(h.done() for h in handles)
    for h in handles:
        h.wait(0)
    assert len(a.committed) == 5


def test_one_phase_commit_returns_a_finished_handle(tmp_path: Path) -> None:
    class Solo(Shared):
        def commit_one_phase(self, transaction_id: str, data: Mapping[str, Any]) -> None:
            self.committed.append(transaction_id)

    solo = Solo("solo")
    with coordinator(tmp_path) as coord:
        txid = start(coord, solo)
        handle = coord.commit_transaction(txid, wait=False)
        assert handle.done()
        assert repr(handle) == f"CommitHandle({txid!r}, done=True)"
        handle.wait(0)
    assert solo.committed == [txid]


def test_abandon_fails_queued_handles_and_recovery_finishes_them(tmp_path: Path) -> None:
    """``abandon`` (the in-process kill) drops queued phase two: those handles fail with
    CoordinatorClosedError; the decisions are durable, so the next open commits them."""
    first = Shared("first")
    first.gate.clear()  # hold the completer's first round
    coord = coordinator(tmp_path)
    held = coord.commit_transaction(start(coord, first), wait=False)
    queued_ids = [start(coord, Shared(f"q{i}")) for i in range(3)]
    queued = [coord.commit_transaction(t, wait=False) for t in queued_ids]
    abandon = threading.Thread(target=coord.abandon)
    abandon.start()  # it waits for the round in progress to end
    completer = getattr(coord, "_completer", None) or coord.engine.completer  # type: ignore[attr-defined]
    assert wait_until(lambda: completer._stopping)
    first.gate.set()
    for handle in queued:
        with pytest.raises(CoordinatorClosedError, match="abandoned"):
            handle.wait(10)
    abandon.join(10)
    held.wait(10)  # the round in progress was not cut short
    with TransactionCoordinator(tmp_path, recovery_interval=None) as again:
        # objects enlisted directly cannot be rebuilt: in doubt, never dropped (the held
        # one too if abandon dropped its lazy acknowledgements, as a kill would)
        in_doubt = {d.txid for d in again.last_recovery_report.in_doubt}
        assert set(queued_ids) <= in_doubt <= {*queued_ids, held.txid}
        assert all(again.state(t) is TxState.DECIDED_COMMIT for t in queued_ids)
