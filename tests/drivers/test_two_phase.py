"""The engine's 2PC paths on a real LMDB log with real threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from helpers import FOREVER, Failures, Journal, RecordingParticipant

from dtc_wal import READ_ONLY
from dtc_wal.drivers import Engine, EngineOptions
from dtc_wal.errors import (
    CommitIncompleteError,
    DuplicateParticipantError,
    MixedTransactionError,
    ParticipantTimeoutError,
    TransactionAborted,
    TransactionStateError,
    TransientError,
    UnencodableDataError,
    UnknownTransactionError,
    VoteNo,
)
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol import Mode
from dtc_wal.protocol import Options as ProtocolOptions
from dtc_wal.protocol.records import Decided, Ended, MemberState, Opened, Outcome

from .conftest import FAST_RETRIES


def kinds(log: LmdbLog, txid: str) -> list[str]:
    log.flush()
    stored = log.read(txid)
    assert stored is not None
    return [type(r).__name__ for r in stored.records]


def three(engine: Engine, journal: Journal, **kw: Any) -> tuple[str, list[RecordingParticipant]]:
    txid = engine.begin()
    members = [RecordingParticipant(n, journal, **kw.get(n, {})) for n in ("a", "b", "c")]
    for m in members:
        engine.enlist(txid, m)
    return txid, members


def test_three_participants_commit_with_two_syncs_and_three_records(
    engine: Engine, log: LmdbLog
) -> None:
    journal = Journal()
    txid, members = three(engine, journal)
    before = log.syncs
    assert engine.commit(txid, {"order": 7}) is None
    assert log.syncs - before == 2
    assert [m.prepared_data for m in members] == [[{"order": 7}]] * 3
    calls = journal.of(txid)
    assert sorted(calls[:3]) == [("a", "prepare"), ("b", "prepare"), ("c", "prepare")]
    assert sorted(calls[3:]) == [("a", "commit"), ("b", "commit"), ("c", "commit")]
    assert kinds(log, txid) == ["Opened", "Decided", "Ended"]
    stored = log.read(txid)
    assert stored is not None and stored.finished
    opened = stored.records[0]
    assert isinstance(opened, Opened) and opened.data == {"order": 7}


def test_a_no_vote_aborts_everywhere_with_the_vote_as_cause(engine: Engine, log: LmdbLog) -> None:
    journal = Journal()
    txid, _ = three(engine, journal, b={"vote_no": True})
    with pytest.raises(TransactionAborted) as caught:
        engine.commit(txid)
    assert isinstance(caught.value.cause, VoteNo)
    assert "b voted no" in caught.value.reason
    assert sorted(journal.what(n, txid)[-1] for n in "abc") == ["rollback"] * 3
    assert not any(w == "commit" for _, w in journal.of(txid))
    log.flush()
    stored = log.read(txid)
    assert stored is not None and stored.finished
    decided = stored.records[1]
    assert isinstance(decided, Decided) and decided.outcome is Outcome.ABORT


def test_a_prepare_past_its_timeout_aborts_everywhere(log: LmdbLog) -> None:
    journal = Journal()
    release = threading.Event()
    options = EngineOptions(protocol=ProtocolOptions(prepare_timeout=0.2), policy=FAST_RETRIES)
    with Engine(log, options=options) as engine:
        txid = engine.begin()
        slow = RecordingParticipant("slow", journal, on_prepare=lambda *_: release.wait(5))
        engine.enlist(txid, RecordingParticipant("a", journal))
        engine.enlist(txid, slow)
        with pytest.raises(TransactionAborted) as caught:
            engine.commit(txid)
        release.set()
    assert isinstance(caught.value.cause, ParticipantTimeoutError)
    assert journal.what("a", txid) == ["prepare", "rollback"]
    assert journal.what("slow", txid)[-1] == "rollback"


def test_transient_prepare_errors_are_retried(engine: Engine) -> None:
    journal = Journal()
    flaky = {"prepare_failures": Failures(2, lambda: TransientError("busy"))}
    txid, members = three(engine, journal, b=flaky)
    engine.commit(txid)
    assert members[1].calls("prepare") == 3
    assert members[1].calls("commit") == 1


def test_calls_run_inline_keep_the_policy_retries_and_votes(engine: Engine) -> None:
    """Once the tracker runs a kind of call in the caller's thread, its first failure goes
    to the policy (retried, not repeated) and a VoteNo still aborts with the vote as cause."""
    journal = Journal()
    for _ in range(10):  # the tracker learns that these calls are fast
        txid, _members = three(engine, journal)
        engine.commit(txid)
    threads: list[str] = []
    seen = {"on_prepare": lambda _t, _d: threads.append(threading.current_thread().name)}
    flaky = {"prepare_failures": Failures(2, lambda: TransientError("busy")), **seen}
    txid, _members = three(engine, journal, a=seen, b=flaky, c=seen)
    engine.commit(txid)
    assert threads and set(threads) == {threading.current_thread().name}
    assert journal.what("b", txid) == ["prepare"] * 3 + ["commit"]
    assert journal.what("a", txid) == journal.what("c", txid) == ["prepare", "commit"]
    txid, _members = three(engine, journal, b={"vote_no": True})
    with pytest.raises(TransactionAborted) as caught:
        engine.commit(txid)
    assert isinstance(caught.value.cause, VoteNo)
    assert journal.what("b", txid) == ["prepare", "rollback"]


def test_a_commit_that_keeps_failing_is_incomplete_then_recovery_finishes_it(
    log: LmdbLog,
) -> None:
    from dtc_wal.registry import ParticipantRegistry

    journal = Journal()
    stubborn = RecordingParticipant("b", journal, commit_failures=Failures(FOREVER))
    registry = ParticipantRegistry()
    registry.register("b", lambda **_: stubborn)
    with Engine(log, registry, EngineOptions(policy=FAST_RETRIES)) as engine:
        txid = engine.begin()
        engine.enlist(txid, RecordingParticipant("a", journal))
        engine.enlist(txid, "b")
        with pytest.raises(CommitIncompleteError) as caught:
            engine.commit(txid)
    assert caught.value.pending == ("b",)
    assert stubborn.calls("commit") == 4  # 1 + max_retries
    stubborn.commit_failures = Failures()
    log.flush()  # what a closing coordinator writes: a's acknowledgement
    # A new engine on the same log: the machine is seeded from what the log holds.
    with Engine(log, registry, EngineOptions(policy=FAST_RETRIES)) as later:
        report = later.recover()
    assert report.finished == [txid], report
    assert journal.what("a", txid) == ["prepare", "commit"]  # only b was pending
    assert stubborn.calls("commit") == 5
    log.flush()
    stored = log.read(txid)
    assert stored is not None and stored.finished


def test_an_incomplete_commit_is_parked_and_finished_by_recover(engine: Engine) -> None:
    journal = Journal()
    txid, members = three(engine, journal, c={"commit_failures": Failures(4)})
    with pytest.raises(CommitIncompleteError):
        engine.commit(txid)
    assert engine.parked == [txid]
    report = engine.recover()
    assert report.finished == [txid]
    assert engine.parked == []
    assert members[2].calls("commit") == 5


def test_wait_false_returns_a_handle_after_the_durable_decision(
    engine: Engine, log: LmdbLog
) -> None:
    journal = Journal()
    committing = threading.Event()
    release = threading.Event()

    def hold(txid: str) -> None:
        committing.set()
        release.wait(5)

    txid = engine.begin()
    engine.enlist(txid, RecordingParticipant("a", journal, on_commit=hold))
    engine.enlist(txid, RecordingParticipant("b", journal))
    before = log.syncs
    handle = engine.commit(txid, wait=False)
    assert handle is not None
    assert log.syncs - before == 2  # opening and decision are durable on return
    assert committing.wait(5)
    assert not handle.done()
    release.set()
    handle.wait(5)
    assert kinds(log, txid) == ["Opened", "Decided", "Ended"]


class Batching:
    """A participant with ``commit_many``; its first batch waits until released."""

    def __init__(self) -> None:
        self.name = "many"
        self.batches: list[list[str]] = []
        self.single: list[str] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        pass

    def commit(self, transaction_id: str) -> None:
        self.single.append(transaction_id)

    def rollback(self, transaction_id: str) -> None:
        pass

    def commit_many(self, txids: list[str]) -> None:
        self.batches.append(list(txids))
        self.entered.set()
        self.release.wait(5)


def test_commit_many_batches_the_commits_of_many_handles(engine: Engine) -> None:
    many = Batching()
    handles = []
    txids = []
    for i in range(6):
        txid = engine.begin()
        engine.enlist(txid, many)
        engine.enlist(txid, RecordingParticipant("other", Journal()))
        txids.append(txid)
        handles.append(engine.commit(txid, wait=False))
        if i == 0:
            assert many.entered.wait(5)  # the completer is inside the first round
    many.release.set()
    for handle in handles:
        assert handle is not None
        handle.wait(5)
    assert many.batches == [txids[:1], txids[1:]]
    assert many.single == []
    assert engine.completer.batched_calls == 2


class OnePhase(RecordingParticipant):
    def commit_one_phase(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.journal.add(self.name, "commit_one_phase", transaction_id)


def test_one_phase_commit_forces_no_write(engine: Engine, log: LmdbLog) -> None:
    journal = Journal()
    txid = engine.begin()
    engine.enlist(txid, OnePhase("solo", journal))
    before = log.syncs
    engine.commit(txid, {"k": 1})
    assert log.syncs == before
    assert journal.of(txid) == [("solo", "commit_one_phase")]
    assert kinds(log, txid) == ["Opened", "Decided", "Ended"]


class Listing(RecordingParticipant):
    lists_prepared = True


def test_participants_that_list_prepared_work_need_one_forced_write(
    engine: Engine, log: LmdbLog
) -> None:
    journal = Journal()
    txid = engine.begin()
    for n in "abc":
        engine.enlist(txid, Listing(n, journal))
    before = log.syncs
    engine.commit(txid)
    assert log.syncs - before == 1
    assert kinds(log, txid) == ["Opened", "Decided", "Ended"]


class ReadOnly(RecordingParticipant):
    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> Any:
        super().prepare(transaction_id, data)
        return READ_ONLY


def test_read_only_voters_leave_phase_two(engine: Engine, log: LmdbLog) -> None:
    journal = Journal()
    txid = engine.begin()
    engine.enlist(txid, RecordingParticipant("a", journal))
    engine.enlist(txid, ReadOnly("ro", journal))
    engine.commit(txid)
    assert journal.what("ro", txid) == ["prepare"]
    assert journal.what("a", txid) == ["prepare", "commit"]
    log.flush()
    stored = log.read(txid)
    assert stored is not None
    ended = stored.records[-1]
    assert isinstance(ended, Ended) and ended.acks == ((0, MemberState.COMMITTED),)


def test_bad_input_raises_the_package_errors(engine: Engine) -> None:
    journal = Journal()
    txid = engine.begin()
    first = RecordingParticipant("a", journal)
    engine.enlist(txid, first)
    with pytest.raises(DuplicateParticipantError):
        engine.enlist(txid, first)
    with pytest.raises(DuplicateParticipantError):
        engine.enlist(txid, RecordingParticipant("x", journal), name="a")
    assert engine.enlist(txid, RecordingParticipant("a", journal)) == "a#2"
    with pytest.raises(MixedTransactionError):
        engine.enlist(txid, _Step(), mode=Mode.SAGA)
    with pytest.raises(UnencodableDataError):
        engine.commit(txid, {"when": time.gmtime()})
    engine.commit(txid, {"ok": 1})  # still open after the refusal: commits
    with pytest.raises(UnknownTransactionError):
        engine.commit(txid)
    with pytest.raises(UnknownTransactionError):
        engine.enlist("no-such-tx", first)


def test_commit_twice_at_once_is_a_state_error(engine: Engine) -> None:
    journal = Journal()
    entered = threading.Event()
    release = threading.Event()
    txid = engine.begin()
    engine.enlist(
        txid,
        RecordingParticipant("a", journal, on_prepare=lambda *_: (entered.set(), release.wait(5))),
    )
    worker = threading.Thread(target=engine.commit, args=(txid,))
    worker.start()
    assert entered.wait(5)
    with pytest.raises(TransactionStateError):
        engine.commit(txid)
    with pytest.raises(TransactionStateError):
        engine.enlist(txid, RecordingParticipant("late", journal))
    release.set()
    worker.join(5)


class _Step:
    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        pass

    def compensate(self, transaction_id: str) -> None:
        pass


def test_begin_returns_distinct_uuid4_strings(engine: Engine) -> None:
    import uuid

    txids = [engine.begin() for _ in range(200)]
    assert len(set(txids)) == len(txids)
    for txid in txids:
        parsed = uuid.UUID(txid)
        assert str(parsed) == txid
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        engine.rollback(txid)


@pytest.mark.parametrize("deadlines", [True, False])
def test_the_last_call_without_a_deadline_runs_in_the_callers_thread(
    log: LmdbLog, deadlines: bool
) -> None:
    """Of the calls bound for the pool, the last runs in the caller's thread when it has no
    deadline (one hand-off fewer); with a deadline every call stays on the pool, where its
    deadline is enforced."""
    timeouts = {} if deadlines else {"prepare_timeout": None, "phase2_timeout": None}
    options = EngineOptions(protocol=ProtocolOptions(**timeouts), inline_threshold=None)
    journal = Journal()
    threads: dict[tuple[str, str], str] = {}

    def seen(name: str, op: str) -> Any:
        return lambda *_: threads.__setitem__((name, op), threading.current_thread().name)

    with Engine(log, options=options) as engine:
        txid = engine.begin()
        for n in ("a", "b", "c"):
            hooks = {"on_prepare": seen(n, "prepare"), "on_commit": seen(n, "commit")}
            engine.enlist(txid, RecordingParticipant(n, journal, **hooks))
        engine.commit(txid)
    here = threading.current_thread().name
    assert len(threads) == 6
    in_caller = sorted(key for key, thread in threads.items() if thread == here)
    assert in_caller == ([] if deadlines else [("c", "commit"), ("c", "prepare")])
    assert journal.what("a", txid) == journal.what("c", txid) == ["prepare", "commit"]
