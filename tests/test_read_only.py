"""Read-only votes: a participant that changed nothing is left out of phase two."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from dtc_wal.history import TransactionView
from dtc_wal.records import LogRecord

from dtc_wal import READ_ONLY, Outcome, ParticipantState, RecordType, TransactionCoordinator
from dtc_wal.errors import InvalidTransitionError, TransactionAborted, VoteNo
from dtc_wal.states import Mode


class Voter:
    def __init__(self, name: str, vote: object = None) -> None:
        self.name = name
        self.vote = vote
        self.calls: list[str] = []

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> object:
        self.calls.append("prepare")
        if isinstance(self.vote, Exception):
            raise self.vote
        return self.vote

    def commit(self, transaction_id: str) -> None:
        self.calls.append("commit")

    def rollback(self, transaction_id: str) -> None:
        self.calls.append("rollback")


@pytest.mark.format1
def test_read_only_participant_gets_no_commit(tmp_path: Path) -> None:
    writer, reader = Voter("writer"), Voter("reader", READ_ONLY)
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, writer)
        coord.enlist_participant(txid, reader)
        coord.commit_transaction(txid)
        view = coord.transaction(txid)
        records = coord.wal.store.records_of(txid)
    assert writer.calls == ["prepare", "commit"]
    assert reader.calls == ["prepare"]
    assert view.participants["reader"].state is ParticipantState.READ_ONLY
    assert view.participants["writer"].state is ParticipantState.COMMITTED
    prepared = [r for _, r in records if r.type is RecordType.PREPARED]
    assert {(r.participant, r.outcome) for r in prepared} == {
        ("writer", None),
        ("reader", Outcome.READ_ONLY),
    }
    acked = [r.participant for _, r in records if r.type is RecordType.ACKNOWLEDGED]
    assert acked == ["writer"]


def test_read_only_participant_gets_no_rollback_on_abort(tmp_path: Path) -> None:
    refuser, reader = Voter("refuser", VoteNo("no")), Voter("reader", READ_ONLY)
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, reader)
        coord.enlist_participant(txid, refuser)
        with pytest.raises(TransactionAborted):
            coord.commit_transaction(txid)
    assert reader.calls == ["prepare"]
    assert refuser.calls == ["prepare", "rollback"]


def test_all_read_only_still_commits(tmp_path: Path) -> None:
    a, b = Voter("a", READ_ONLY), Voter("b", READ_ONLY)
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, a)
        coord.enlist_participant(txid, b)
        coord.commit_transaction(txid)
        assert coord.state(txid).value == "committed"
    assert a.calls == b.calls == ["prepare"]


@pytest.mark.format1
def test_saga_step_cannot_vote_read_only_in_the_log() -> None:
    view = TransactionView.begin(LogRecord(RecordType.BEGUN, "t", 1.0))
    view.apply(LogRecord(RecordType.ENLISTED, "t", 1.0, participant="s", order=0, mode=Mode.SAGA))
    with pytest.raises(InvalidTransitionError, match="read-only"):
        view.apply(
            LogRecord(RecordType.PREPARED, "t", 1.0, participant="s", outcome=Outcome.READ_ONLY)
        )
    with pytest.raises(InvalidTransitionError):
        view.apply(
            LogRecord(RecordType.PREPARED, "t", 1.0, participant="s", outcome=Outcome.COMMIT)
        )
