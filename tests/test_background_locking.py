"""A caller whose commit ends incomplete is not held up by a recovery pass in progress."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dtc_wal import TransactionCoordinator, TxState
from dtc_wal.errors import CommitIncompleteError


class Gate:
    """commit fails while ``failing``; blocks on ``gate`` while ``blocking``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing = True
        self.blocking = False
        self.gate = threading.Event()
        self.entered = threading.Event()

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        pass

    def commit(self, transaction_id: str) -> None:
        if self.blocking:
            self.entered.set()
            assert self.gate.wait(30)
        if self.failing:
            raise ConnectionError(f"{self.name} is down")

    def rollback(self, transaction_id: str) -> None:
        pass


def test_hand_over_does_not_wait_for_a_running_pass(tmp_path: Path) -> None:
    stuck, other = Gate("stuck"), Gate("other")
    with TransactionCoordinator(tmp_path, recovery_interval=None, max_retries=0) as coord:
        first = coord.begin_transaction()
        coord.enlist_participant(first, stuck)
        with pytest.raises(CommitIncompleteError):
            coord.commit_transaction(first)
        stuck.failing, stuck.blocking = False, True  # the pass will hang inside commit
        passing = threading.Thread(target=coord.recover_now)
        passing.start()
        assert stuck.entered.wait(10)

        second = coord.begin_transaction()
        coord.enlist_participant(second, other)
        with pytest.raises(CommitIncompleteError):
            coord.commit_transaction(second)  # returns although the pass still runs
        assert passing.is_alive()

        stuck.gate.set()
        passing.join(10)
        assert not passing.is_alive()
        assert coord.state(first) is TxState.COMMITTED
        other.failing = False
        coord.recover_now()
        assert coord.state(second) is TxState.COMMITTED
