"""Two-phase commit through the public coordinator, on a real log: seed 1, votes, parallel
prepare, timeouts, commit that cannot finish, and what the log holds in which order."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import FOREVER, Failures, Journal, RecordingParticipant

from dtc_wal import (
    CommitIncompleteError,
    ManualClock,
    ParticipantRegistry,
    TransactionAborted,
    TransactionCoordinator,
    TxState,
    VoteNo,
)
from dtc_wal.errors import ParticipantTimeoutError, TransactionStateError
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol import (
    Acked,
    Decided,
    Ended,
    Failed,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    Outcome,
    Record,
    Vote,
    fold,
)

MakeCoord = Callable[..., TransactionCoordinator]


def stored(coord: TransactionCoordinator, txid: str) -> list[Record]:
    """The transaction's records as durable in the log right now (nothing flushed)."""
    found = coord.log.read(txid)
    return [] if found is None else list(found.records)


def logged(coord: TransactionCoordinator, txid: str) -> list[Record]:
    """Every record of the transaction, lazy ones included (flushed first)."""
    coord.flush()
    found = coord.log.read(txid)
    assert found is not None and found.damage is None
    return list(found.records)


def types(records: list[Record]) -> list[type]:
    return [type(r) for r in records]


# --- seed 1 ---------------------------------------------------------------------------


def test_seed_1(log_dir: Path, journal: Journal) -> None:
    """The issue's first example, as written: an object participant and a registry
    participant by name with params; commit with data."""
    built: list[RecordingParticipant] = []

    def make_inventory(sku: str) -> RecordingParticipant:
        participant = RecordingParticipant(f"inventory-{sku}", journal)
        built.append(participant)
        return participant

    some_participant = RecordingParticipant("some", journal)

    registry = ParticipantRegistry()
    registry.register("inventory", make_inventory)

    with TransactionCoordinator(log_dir, registry=registry) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, some_participant)
        coord.enlist_participant(txid, "inventory", params={"sku": "A1"})
        coord.commit_transaction(txid, data={"sku": "A1", "version": 7})

        assert uuid.UUID(txid).version == 4
        assert coord.state(txid) is TxState.COMMITTED
        view = coord.transaction(txid)
        assert {p.name: p.state for p in view.participants.values()} == {
            "some": MemberState.COMMITTED,
            "inventory": MemberState.COMMITTED,
        }
        inventory = view.participants["inventory"]
        assert (inventory.factory, inventory.params) == ("inventory", {"sku": "A1"})
        assert view.participants["some"].factory is None

    (inventory_participant,) = built
    for participant in (some_participant, inventory_participant):
        assert participant.prepared_data == [{"sku": "A1", "version": 7}]
        assert journal.what(participant.name, txid) == ["prepare", "commit"]


def test_log_shows_records_in_protocol_order(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    """Format 2 writes one record per protocol step: a 3-participant commit is Opened (every
    member, in enlist order, with the data), Decided (every vote) and Ended (every ack)."""
    names = ["a", "b", "c"]
    txid = coord.begin_transaction()
    for name in names:
        coord.enlist_participant(txid, RecordingParticipant(name, journal))
    coord.commit_transaction(txid, data={"order": 1})

    records = logged(coord, txid)
    assert types(records) == [Opened, Decided, Ended]
    opened, decided, ended = records
    assert isinstance(opened, Opened) and isinstance(decided, Decided)
    assert isinstance(ended, Ended)
    assert opened.mode is Mode.TWO_PHASE
    assert opened.members == tuple(MemberSpec(name) for name in names)
    assert opened.data == {"order": 1}
    assert decided.outcome is Outcome.COMMIT
    assert sorted(decided.votes) == [(0, Vote.YES), (1, Vote.YES), (2, Vote.YES)]
    assert sorted(ended.acks) == [(i, MemberState.COMMITTED) for i in range(3)]
    assert all(r.txid == txid for r in records)
    assert opened.at <= decided.at <= ended.at
    assert coord.unfinished() == []


def test_opening_records_are_durable_before_prepare(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    """The Opened record (naming every member) is in the log -- read without a flush, so
    only what the writer committed -- when the first prepare runs."""
    seen: list[list[Record]] = []

    def look(txid: str, data: Mapping[str, Any]) -> None:
        seen.append(stored(coord, txid))

    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal, on_prepare=look))
    coord.enlist_participant(txid, RecordingParticipant("b", journal))
    coord.flush()
    assert coord.log.read(txid) is None  # nothing sent, nothing logged yet
    coord.commit_transaction(txid)
    ((opened,),) = seen
    assert isinstance(opened, Opened)
    assert [m.name for m in opened.members] == ["a", "b"]


def test_commit_decision_is_durable_before_first_commit(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    """Inside every commit call the log already holds the commit decision with both yes
    votes (read without a flush: only what the writer committed)."""
    seen: list[list[Record]] = []

    def look(txid: str) -> None:
        seen.append(stored(coord, txid))

    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal, on_commit=look))
    coord.enlist_participant(txid, RecordingParticipant("b", journal, on_commit=look))
    coord.commit_transaction(txid)
    assert len(seen) == 2
    for records in seen:
        assert types(records) == [Opened, Decided]
        decided = records[-1]
        assert isinstance(decided, Decided) and decided.outcome is Outcome.COMMIT
        assert sorted(decided.votes) == [(0, Vote.YES), (1, Vote.YES)]


def test_state_of_open_transaction(coord: TransactionCoordinator, journal: Journal) -> None:
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal))
    view = coord.transaction(txid)
    assert view.state is TxState.ACTIVE
    assert list(view.participants) == ["a"]
    assert coord.state(txid) is TxState.ACTIVE


class Plain:
    """A participant without a ``name`` attribute: it is logged under its class name."""

    def prepare(self, txid: str, data: Mapping[str, Any]) -> None: ...
    def commit(self, txid: str) -> None: ...
    def rollback(self, txid: str) -> None: ...


def test_participants_without_a_name_get_unique_names(coord: TransactionCoordinator) -> None:
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, Plain())
    coord.enlist_participant(txid, Plain())
    coord.enlist_participant(txid, Plain(), name="third")
    coord.commit_transaction(txid)
    view = coord.transaction(txid)
    assert set(view.participants) == {"Plain", "Plain#2", "third"}
    assert {p.state for p in view.participants.values()} == {MemberState.COMMITTED}


def test_enlist_returns_the_name_it_is_logged_under(coord: TransactionCoordinator) -> None:
    txid = coord.begin_transaction()
    first = coord.enlist_participant(txid, Plain())
    second = coord.enlist_participant(txid, Plain())
    assert first == "Plain"
    assert second == "Plain#2"


# --- votes and aborts -----------------------------------------------------------------


def test_no_vote_aborts_and_everyone_rolls_back(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal))
    coord.enlist_participant(txid, RecordingParticipant("b", journal, vote_no=True))
    coord.enlist_participant(txid, RecordingParticipant("c", journal))

    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid, data={"x": 1})

    error = info.value
    assert isinstance(error.cause, VoteNo)
    assert error.__cause__ is error.cause
    assert error.txid == txid
    assert "b voted no" in error.reason
    assert error.pending == ()
    for name in "abc":
        assert journal.what(name, txid) == ["prepare", "rollback"]
    assert coord.state(txid) is TxState.ABORTED
    assert coord.unfinished() == []
    records = logged(coord, txid)
    assert types(records) == [Opened, Decided, Ended]
    opened, decided, ended = records
    assert isinstance(opened, Opened) and [m.name for m in opened.members] == ["a", "b", "c"]
    assert isinstance(decided, Decided) and decided.outcome is Outcome.ABORT
    assert decided.reason is not None and "b voted no" in decided.reason
    assert isinstance(ended, Ended)
    assert sorted(ended.acks) == [(i, MemberState.ROLLED_BACK) for i in range(3)]
    view = coord.transaction(txid)
    assert {p.state for p in view.participants.values()} == {MemberState.ROLLED_BACK}
    assert view.reason is not None and "b voted no" in view.reason


def test_rollback_before_commit_rolls_back_every_participant(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal))
    coord.enlist_participant(txid, RecordingParticipant("b", journal))
    coord.rollback_transaction(txid)
    assert sorted(journal.of(txid)) == [("a", "rollback"), ("b", "rollback")]
    assert coord.state(txid) is TxState.ABORTED
    assert coord.transaction(txid).reason == "rolled back by the caller"


def test_prepare_runs_in_parallel(coord: TransactionCoordinator, journal: Journal) -> None:
    """Each prepare waits for the other at a barrier: it passes only when both run at once."""
    barrier = threading.Barrier(2)

    def meet(txid: str, data: Mapping[str, Any]) -> None:
        barrier.wait(timeout=5)

    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal, on_prepare=meet))
    coord.enlist_participant(txid, RecordingParticipant("b", journal, on_prepare=meet))
    coord.commit_transaction(txid)
    assert coord.state(txid) is TxState.COMMITTED


def test_prepare_timeout_aborts(make_coord: MakeCoord, journal: Journal) -> None:
    coord = make_coord(prepare_timeout=0.3, clock=ManualClock())
    release = threading.Event()

    def hang(txid: str, data: Mapping[str, Any]) -> None:
        release.wait(10)

    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("hanging", journal, on_prepare=hang))
    coord.enlist_participant(txid, RecordingParticipant("quick", journal))
    try:
        with pytest.raises(TransactionAborted) as info:
            coord.commit_transaction(txid)
    finally:
        release.set()
    assert isinstance(info.value.cause, ParticipantTimeoutError)
    assert isinstance(info.value.cause, TimeoutError)
    assert "hanging" in info.value.reason
    assert journal.what("quick", txid) == ["prepare", "rollback"]
    assert "rollback" in journal.what("hanging", txid)
    assert "commit" not in journal.what("hanging", txid)
    assert coord.state(txid) is TxState.ABORTED


# --- commit that cannot finish ----------------------------------------------------------


def test_commit_failing_forever_leaves_decided_commit(
    make_coord: MakeCoord, log_dir: Path, journal: Journal
) -> None:
    coord = make_coord(clock=ManualClock(), max_retries=3)
    stuck = RecordingParticipant("stuck", journal, commit_failures=Failures(FOREVER))
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal))
    coord.enlist_participant(txid, stuck)
    coord.enlist_participant(txid, RecordingParticipant("c", journal))

    with pytest.raises(CommitIncompleteError) as info:
        coord.commit_transaction(txid)

    error = info.value
    assert error.txid == txid
    assert error.pending == ("stuck",)
    assert "injected failure" in error.errors[0]
    assert "recovery will finish it" in str(error)
    assert not isinstance(error, TransactionAborted)
    # the others still committed; stuck was tried 1 + max_retries times; nobody rolled back
    assert journal.what("a", txid) == ["prepare", "commit"]
    assert journal.what("c", txid) == ["prepare", "commit"]
    assert journal.what("stuck", txid) == ["prepare"] + ["commit"] * 4
    # the transaction stays unfinished, decided commit
    assert coord.state(txid) is TxState.DECIDED_COMMIT
    (unfinished,) = coord.unfinished()
    assert unfinished.txid == txid
    assert [p.name for p in unfinished.pending()] == ["stuck"]
    assert unfinished.participants["stuck"].attempts == 4
    assert unfinished.participants["stuck"].last_error is not None
    records = logged(coord, txid)
    assert types(records[:2]) == [Opened, Decided]
    decided = records[1]
    assert isinstance(decided, Decided) and decided.outcome is Outcome.COMMIT
    # after the decision: a and c acknowledged (Acked), stuck failed 4 times; no Ended
    after = records[2:]
    assert Ended not in types(after)
    acks = sorted(a for r in after if isinstance(r, Acked) for a in r.acks)
    assert acks == [(0, MemberState.COMMITTED), (2, MemberState.COMMITTED)]
    failed = [r for r in after if isinstance(r, Failed)]
    assert [(f.member, f.op, f.attempts) for f in failed] == [(1, Op.COMMIT, 4)]
    assert "injected failure" in failed[0].error

    # the outcome never flips: the caller can neither roll back nor commit again
    with pytest.raises(TransactionStateError):
        coord.rollback_transaction(txid)
    with pytest.raises(TransactionStateError):
        coord.commit_transaction(txid)
    assert coord.state(txid) is TxState.DECIDED_COMMIT
    assert all(what != "rollback" for _, what in journal.of(txid))

    coord.close()
    with LmdbLog(log_dir, readonly=True) as log:
        found = log.read(txid)
        assert found is not None and fold(found.records).state is TxState.DECIDED_COMMIT
        assert [t.txid for t in log.unfinished()] == [txid]


def test_rollback_failing_forever_leaves_decided_abort(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("no", journal, vote_no=True))
    coord.enlist_participant(
        txid, RecordingParticipant("stuck", journal, rollback_failures=Failures(FOREVER))
    )
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)
    assert info.value.pending == ("stuck",)
    assert "recovery keeps retrying" in str(info.value)
    assert journal.what("no", txid) == ["prepare", "rollback"]
    assert coord.state(txid) is TxState.DECIDED_ABORT
    assert [v.txid for v in coord.unfinished()] == [txid]


def test_commit_of_transaction_without_participants(coord: TransactionCoordinator) -> None:
    txid = coord.begin_transaction()
    coord.commit_transaction(txid)
    assert coord.state(txid) is TxState.COMMITTED
    records = logged(coord, txid)
    assert types(records) == [Opened, Decided, Ended]
    assert isinstance(records[0], Opened) and records[0].members == ()
    assert isinstance(records[1], Decided) and records[1].outcome is Outcome.COMMIT


def test_rollback_of_transaction_without_participants(coord: TransactionCoordinator) -> None:
    txid = coord.begin_transaction()
    coord.rollback_transaction(txid)
    assert coord.state(txid) is TxState.ABORTED


def test_every_event_of_a_transaction_names_its_txid(
    coord: TransactionCoordinator, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dtc_wal")
    committed = coord.begin_transaction()
    coord.enlist_participant(
        committed,
        RecordingParticipant("flaky", journal, prepare_failures=Failures(1, ConnectionError)),
    )
    coord.commit_transaction(committed)
    aborted = coord.begin_transaction()
    coord.enlist_participant(aborted, RecordingParticipant("no", journal, vote_no=True))
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(aborted)

    events = [r for r in caplog.records if r.name.startswith("dtc_wal.coordinator")]
    messages = [r.getMessage() for r in events]
    assert len(events) >= 8, messages
    for message in messages:
        assert committed in message or aborted in message, message
    text = "\n".join(messages)
    for what in ("begun", "enlisted", "will retry", "decided commit", "decided abort"):
        assert what in text, what
