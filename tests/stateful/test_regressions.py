"""Bugs the stateful machine found, each kept as a plain test with its minimal example.

Every test names the machine's steps that found it; docs/testing.md lists them too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dtc_wal import CommitIncompleteError, ManualClock, TransactionCoordinator, TxState

from .checks import closed_log_problems
from .model import MAX_RETRIES
from .world import TWO_PHASE_FACTORY, Behaviour, World


@pytest.fixture
def world() -> World:
    return World()


def _open(path: Path, world: World) -> TransactionCoordinator:
    return TransactionCoordinator(
        path,
        registry=world.registry(),
        clock=ManualClock(),
        recovery_interval=None,
        max_retries=MAX_RETRIES,
    )


def test_recovery_does_not_resend_to_a_participant_an_operator_resolved(
    tmp_path: Path, world: World
) -> None:
    """Found as: concurrent_batch (2PC, two participants failing commit) -> resolve_by_hand
    (one of them) -> recover_now. The handed-over transaction kept its stale member states,
    so recovery re-sent commit to the resolved participant; the table refused that ACK and,
    with it, the whole lazy batch -- the other participant's ACK and COMPLETED were lost and
    the transaction never finished. Fixed in the old core (its recovery took acknowledged/
    resolved states from the log); kept to hold the engine to it (docs/testing.md)."""
    a = world.add(Behaviour("phase2-fail", MAX_RETRIES + 1))
    b = world.add(Behaviour("phase2-fail", MAX_RETRIES + 1))
    coord = _open(tmp_path, world)
    try:
        txid = coord.begin_transaction()
        for system in (a, b):
            coord.enlist_participant(
                txid, TWO_PHASE_FACTORY, name=system.name, params={"system": system.name}
            )
        with pytest.raises(CommitIncompleteError):
            coord.commit_transaction(txid)
        commits_of_a = a.calls.count(("commit", txid))

        a.settle(txid, "commit", saga=False)
        coord.resolve(txid, "commit", reason="done by hand", participant=a.name)
        report = coord.recover_now()

        assert report.finished == [txid]
        assert coord.state(txid) is TxState.COMMITTED
        assert a.calls.count(("commit", txid)) == commits_of_a
        assert txid in b.committed
    finally:
        coord.close()
    assert closed_log_problems(tmp_path) == []
