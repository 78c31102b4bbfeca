"""Operator resolution through the coordinator, in the words an operator uses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dtc_wal import TransactionCoordinator, TxState
from dtc_wal.errors import TransactionAborted, VoteNo


class Stuck:
    """Votes as told; its rollback never succeeds."""

    def __init__(self, name: str, vote_no: bool = False) -> None:
        self.name = name
        self.vote_no = vote_no

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        if self.vote_no:
            raise VoteNo("no")

    def commit(self, transaction_id: str) -> None:
        pass

    def rollback(self, transaction_id: str) -> None:
        raise ConnectionError("gone for good")


@pytest.mark.parametrize("word", ["abort", "rollback", "ABORT"])
def test_resolve_abort_settles_a_participant_that_cannot_roll_back(
    tmp_path: Path, word: str
) -> None:
    with TransactionCoordinator(tmp_path, recovery_interval=None, max_retries=0) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, Stuck("warehouse"))
        coord.enlist_participant(txid, Stuck("refuser", vote_no=True))
        with pytest.raises(TransactionAborted) as info:
            coord.commit_transaction(txid)
        assert set(info.value.pending) == {"warehouse", "refuser"}
        coord.resolve(txid, word, participant="warehouse", reason="undone by hand")
        assert coord.state(txid) is TxState.DECIDED_ABORT
        view = coord.resolve(txid, word, reason="undone by hand too")
        assert view.state is TxState.ABORTED
        assert view.participants["warehouse"].resolved_by  # who said so is on record


def test_resolve_refuses_an_unknown_outcome_word(tmp_path: Path) -> None:
    with (
        TransactionCoordinator(tmp_path, recovery_interval=None) as coord,
        pytest.raises(ValueError, match="'commit' or 'abort'"),
    ):
        coord.resolve("any", "maybe", reason="?")
