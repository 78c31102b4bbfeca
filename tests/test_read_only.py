"""Read-only votes: a participant that changed nothing is left out of phase two."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dtc_wal import READ_ONLY, TransactionCoordinator
from dtc_wal.errors import TransactionAborted, VoteNo
from dtc_wal.protocol import (
    Decided,
    Ended,
    MemberSpec,
    MemberState,
    Mode,
    Opened,
    Outcome,
    OutOfOrderError,
    Vote,
    fold,
)


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


def test_read_only_participant_gets_no_commit(tmp_path: Path) -> None:
    writer, reader = Voter("writer"), Voter("reader", READ_ONLY)
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, writer)
        coord.enlist_participant(txid, reader)
        coord.commit_transaction(txid)
        view = coord.transaction(txid)
        coord.flush()
        found = coord.log.read(txid)
        assert found is not None
        records = list(found.records)
    assert writer.calls == ["prepare", "commit"]
    assert reader.calls == ["prepare"]
    assert view.participants["reader"].state is MemberState.READ_ONLY
    assert view.participants["writer"].state is MemberState.COMMITTED
    assert [type(r) for r in records] == [Opened, Decided, Ended]
    _, decided, ended = records
    # the decision carries both votes; only the writer acknowledges a commit
    assert isinstance(decided, Decided) and decided.outcome is Outcome.COMMIT
    assert sorted(decided.votes) == [(0, Vote.YES), (1, Vote.READ_ONLY)]
    assert isinstance(ended, Ended) and ended.acks == ((0, MemberState.COMMITTED),)


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


def test_saga_step_cannot_vote_read_only_in_the_log() -> None:
    """A saga's decision carries no votes (format 2): a log claiming a saga step voted
    (read-only or yes) does not fold."""
    opened = Opened("t", 1.0, Mode.SAGA, (MemberSpec("s"),))
    for vote in (Vote.READ_ONLY, Vote.YES):
        with pytest.raises(OutOfOrderError, match="saga steps do not vote"):
            fold([opened, Decided("t", 2.0, Outcome.COMMIT, votes=((0, vote),))])
    # without votes the same decision folds: a saga's commit settles every step
    assert fold([opened, Decided("t", 2.0, Outcome.COMMIT)]).members[0].state is (
        MemberState.COMMITTED
    )
