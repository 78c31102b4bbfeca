"""One-phase commit: a lone participant with commit_one_phase decides by itself."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dtc_wal import TransactionCoordinator, TxState
from dtc_wal.errors import TransactionAborted, VoteNo
from dtc_wal.protocol import Decided, Ended, MemberState, Opened, Outcome, Record, Vote


class OnePhase:
    def __init__(self, name: str, refuse: bool = False) -> None:
        self.name = name
        self.refuse = refuse
        self.calls: list[str] = []

    def commit_one_phase(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.calls.append("commit_one_phase")
        if self.refuse:
            raise VoteNo("constraint violated")

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.calls.append("prepare")

    def commit(self, transaction_id: str) -> None:
        self.calls.append("commit")

    def rollback(self, transaction_id: str) -> None:
        self.calls.append("rollback")


def appends_during(coord: TransactionCoordinator, action: Any) -> list[tuple[bool, list[Record]]]:
    """Run ``action`` and return, per log append, whether it was durable (the caller waits
    for its sync) and its records."""
    seen: list[tuple[bool, list[Record]]] = []
    append = coord.log.append

    def spy(records: Any, *, durable: bool = True) -> None:
        seen.append((durable, list(records)))
        append(records, durable=durable)

    coord.log.append = spy  # type: ignore[method-assign]
    try:
        action()
    finally:
        del coord.log.append
    return seen


def test_lone_participant_commits_in_one_phase_without_a_forced_write(tmp_path: Path) -> None:
    p = OnePhase("only")
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, p)
        appends = appends_during(coord, lambda: coord.commit_transaction(txid, data={"k": 1}))
        # one lazy append holding the whole history, after the member's own commit
        assert [(durable, [type(r) for r in rs]) for durable, rs in appends] == [
            (False, [Opened, Decided, Ended])
        ]
        assert coord.state(txid) is TxState.COMMITTED
        coord.flush()
        found = coord.log.read(txid)
        assert found is not None
        records = list(found.records)
    assert p.calls == ["commit_one_phase"]
    assert records == appends[0][1]
    opened, decided, ended = records
    assert isinstance(opened, Opened) and opened.data == {"k": 1}
    assert [m.name for m in opened.members] == ["only"]
    assert isinstance(decided, Decided) and decided.outcome is Outcome.COMMIT
    assert decided.votes == ((0, Vote.YES),)
    assert isinstance(ended, Ended) and ended.acks == ((0, MemberState.COMMITTED),)


def test_refused_one_phase_commit_aborts_and_rolls_back(tmp_path: Path) -> None:
    p = OnePhase("only", refuse=True)
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, p)
        with pytest.raises(TransactionAborted, match="one-phase") as info:
            coord.commit_transaction(txid)
        assert isinstance(info.value.cause, VoteNo)
        assert coord.state(txid) is TxState.ABORTED
    assert p.calls == ["commit_one_phase", "rollback"]


def test_two_participants_use_two_phases(tmp_path: Path) -> None:
    a, b = OnePhase("a"), OnePhase("b")
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, a)
        coord.enlist_participant(txid, b)
        coord.commit_transaction(txid)
    assert a.calls == b.calls == ["prepare", "commit"]


def test_one_phase_can_be_switched_off(tmp_path: Path) -> None:
    p = OnePhase("only")
    with TransactionCoordinator(tmp_path, recovery_interval=None, one_phase=False) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, p)
        coord.commit_transaction(txid)
    assert p.calls == ["prepare", "commit"]
