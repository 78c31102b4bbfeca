"""One-phase commit: a lone participant with commit_one_phase decides by itself."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dtc_wal import RecordType, TransactionCoordinator, TxState
from dtc_wal.errors import TransactionAborted, VoteNo


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


def waits_during(coord: TransactionCoordinator, action: Any) -> list[bool]:
    """Run ``action`` and return, per log append, whether the caller waited for a sync."""
    seen: list[bool] = []
    append = coord.wal.append

    def spy(records: Any, *, wait: bool = True) -> Any:
        seen.append(wait)
        return append(records, wait=wait)

    coord.wal.append = spy  # type: ignore[method-assign]
    try:
        action()
    finally:
        del coord.wal.append
    return seen


@pytest.mark.format1
def test_lone_participant_commits_in_one_phase_without_a_forced_write(tmp_path: Path) -> None:
    p = OnePhase("only")
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, p)
        waits = waits_during(coord, lambda: coord.commit_transaction(txid, data={"k": 1}))
        assert waits == [False]  # one lazy append holding the whole history
        assert coord.state(txid) is TxState.COMMITTED
        types = [r.type for _, r in coord.wal.store.records_of(txid)]
    assert p.calls == ["commit_one_phase"]
    assert types == [
        RecordType.BEGUN,
        RecordType.ENLISTED,
        RecordType.PREPARED,
        RecordType.DECIDED_COMMIT,
        RecordType.ACKNOWLEDGED,
        RecordType.COMPLETED,
    ]


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
