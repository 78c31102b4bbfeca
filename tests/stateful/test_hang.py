"""A real hang past the prepare timeout (the machine models hangs deterministically)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dtc_wal import ManualClock, TransactionAborted, TransactionCoordinator, TxState
from dtc_wal.errors import ParticipantTimeoutError

from .checks import closed_log_problems, world_problems
from .model import WORDS
from .world import Behaviour, TwoPhaseProxy, World


class Hanging(TwoPhaseProxy):
    """Blocks in prepare until released, then prepares for real (a late prepare)."""

    def __init__(self, proxy: TwoPhaseProxy, release: threading.Event) -> None:
        super().__init__(proxy.system)
        self.release = release
        self.returned = threading.Event()

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.release.wait(timeout=30)
        try:
            super().prepare(transaction_id, data)
        finally:
            self.returned.set()


def test_prepare_hanging_past_the_timeout_aborts_and_a_late_prepare_votes_no(
    tmp_path: Path,
) -> None:
    world = World()
    slow = world.add(Behaviour("ok"))
    fine = world.add(Behaviour("ok"))
    release = threading.Event()
    hanging = Hanging(TwoPhaseProxy(slow), release)
    coord = TransactionCoordinator(
        tmp_path,
        registry=world.registry(),
        clock=ManualClock(),
        recovery_interval=None,
        prepare_timeout=0.2,  # real seconds: run_parallel waits on the pool
    )
    try:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, hanging, name=slow.name)
        coord.enlist_participant(txid, TwoPhaseProxy(fine), name=fine.name)
        with pytest.raises(TransactionAborted) as info:
            coord.commit_transaction(txid)
        assert isinstance(info.value.cause, ParticipantTimeoutError)
        assert coord.state(txid) is TxState.ABORTED
        # Rollback reached both; the hanging prepare then finishes and must vote no.
        assert txid in slow.rolled_back and txid in fine.rolled_back
        release.set()
        assert hanging.returned.wait(timeout=10)
        assert txid not in slow.prepared
        view = coord.transaction(txid)
        members = [(slow.name, slow.name), (fine.name, fine.name)]
        assert world_problems(world, view, txid, members, False, WORDS) == []
        assert world.violations() == []
    finally:
        release.set()
        coord.close()
    assert closed_log_problems(tmp_path) == []
