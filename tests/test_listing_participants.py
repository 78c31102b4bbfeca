"""Participants that can list what they hold prepared skip the forced opening write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import listing_bank
import pytest

from dtc_wal import ParticipantRegistry, TransactionCoordinator
from dtc_wal.protocol import Decided, Opened
from dtc_wal.testing.crash_at import command as crash_at_command


class Bank:
    """A resource manager that knows which branches it holds prepared."""

    def __init__(self) -> None:
        self.prepared: set[str] = set()
        self.committed: set[str] = set()
        self.rolled_back: set[str] = set()

    # PreparedResource
    def prepared_transactions(self) -> list[str]:
        return sorted(self.prepared)

    def commit_prepared(self, transaction_id: str) -> None:
        self.prepared.discard(transaction_id)
        self.committed.add(transaction_id)

    def rollback_prepared(self, transaction_id: str) -> None:
        self.prepared.discard(transaction_id)
        self.rolled_back.add(transaction_id)


class Branch:
    lists_prepared = True

    def __init__(self, bank: Bank, on_prepare: Any = None) -> None:
        self.bank = bank
        self.on_prepare = on_prepare

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.bank.prepared.add(transaction_id)
        if self.on_prepare is not None:
            self.on_prepare()

    def commit(self, transaction_id: str) -> None:
        self.bank.commit_prepared(transaction_id)

    def rollback(self, transaction_id: str) -> None:
        self.bank.rollback_prepared(transaction_id)


def registry_for(bank: Bank) -> ParticipantRegistry:
    registry = ParticipantRegistry()
    registry.register("bank", lambda **_: Branch(bank))
    registry.register_resource("bank", lambda: bank)
    return registry


def spy_appends(coord: TransactionCoordinator) -> list[tuple[bool, list[type]]]:
    """From now on, record each log append: whether it is durable, and its record types."""
    seen: list[tuple[bool, list[type]]] = []
    append = coord.log.append

    def spy(records: Any, *, durable: bool = True) -> None:
        seen.append((durable, [type(r) for r in records]))
        append(records, durable=durable)

    coord.log.append = spy  # type: ignore[method-assign]
    return seen


def test_only_the_decision_is_forced(tmp_path: Path) -> None:
    bank = Bank()
    in_log_at_prepare: list[list[type]] = []

    def look() -> None:
        found = coord.log.read(txid)
        in_log_at_prepare.append([] if found is None else [type(r) for r in found.records])

    with TransactionCoordinator(tmp_path, registry=registry_for(bank)) as coord:
        coord.log.lazy_delay = 60.0  # a lazy record is written only when a forced one is
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, "bank", name="a")
        coord.enlist_participant(txid, Branch(bank, on_prepare=look), name="b")
        appends = spy_appends(coord)
        coord.commit_transaction(txid)
        del coord.log.append
        # the opening is lazy and rides along with the forced decision
        assert appends[:2] == [(False, [Opened]), (True, [Decided])]
        assert [durable for durable, _ in appends].count(True) == 1
        assert in_log_at_prepare == [[]]  # not yet on disk while the branches prepared
        assert coord.state(txid).value == "committed"
    assert bank.committed == {txid}


def test_a_participant_that_cannot_list_keeps_the_forced_opening(tmp_path: Path) -> None:
    class Plain(Branch):
        lists_prepared = False

    bank = Bank()
    with TransactionCoordinator(tmp_path, registry=registry_for(bank)) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, "bank", name="a")
        coord.enlist_participant(txid, Plain(bank), name="plain")
        appends = spy_appends(coord)
        coord.commit_transaction(txid)
        del coord.log.append
    assert appends[:2] == [(True, [Opened]), (True, [Decided])]
    assert [durable for durable, _ in appends].count(True) == 2


@pytest.mark.parametrize("point", ["prepare.after-first", "prepare.after-all"])
def test_killed_before_the_decision_rolls_the_prepared_branches_back(
    tmp_path: Path, point: str
) -> None:
    """SIGKILL the coordinator while branches are prepared and the opening records may not
    be on disk. After a restart nothing stays prepared and nothing is committed: recovery
    rolls back what the log knows (presumed abort) and the resource's orphans (what the log
    does not know)."""
    log_dir, db = tmp_path / "log", tmp_path / "bank.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.run(
        crash_at_command(
            point, str(Path(__file__).with_name("listing_bank.py")), str(log_dir), str(db)
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    txid = child.stdout.split()[0]
    bank = listing_bank.Bank(str(db))
    assert txid in bank.states("prepared")
    registry = listing_bank.registry_for(bank)
    with TransactionCoordinator(log_dir, registry=registry, recovery_interval=None) as again:
        assert again.last_recovery_report.clean
        assert again.unfinished() == []
    assert bank.states("prepared") == set()
    assert bank.states("committed") == set()
    assert txid in bank.states("rolled-back")


def test_an_orphan_that_cannot_be_settled_is_in_doubt_then_settled(tmp_path: Path) -> None:
    """A resource that fails to roll back an orphan: reported in doubt with its action,
    nothing dropped, and settled on a later pass once the resource works again."""

    class Stuck(Bank):
        down = True

        def rollback_prepared(self, transaction_id: str) -> None:
            if self.down:
                raise ConnectionError("resource unreachable")
            super().rollback_prepared(transaction_id)

    bank = Stuck()
    bank.prepared.add("orphan-1")  # prepared by a process whose log never knew it
    with TransactionCoordinator(
        tmp_path, registry=registry_for(bank), recovery_interval=None
    ) as coord:
        (doubt,) = coord.last_recovery_report.in_doubt
        assert (doubt.txid, doubt.participant, doubt.outcome, doubt.state) == (
            "orphan-1",
            "bank",
            "rollback",
            "prepared",
        )
        assert "resource unreachable" in (doubt.error or "")
        assert bank.prepared == {"orphan-1"}
        bank.down = False
        assert coord.recover_now().in_doubt == []
    assert bank.rolled_back == {"orphan-1"} and bank.prepared == set()


def test_a_live_transaction_is_not_an_orphan(tmp_path: Path) -> None:
    """A pass run while a caller's transaction is prepared (in the resource, not yet
    decided) leaves it alone; the caller's commit then goes through."""
    bank = Bank()
    with TransactionCoordinator(
        tmp_path, registry=registry_for(bank), recovery_interval=None
    ) as coord:
        txid = coord.begin_transaction()
        passes: list[Any] = []
        coord.enlist_participant(
            txid, Branch(bank, on_prepare=lambda: passes.append(coord.recover_now()))
        )
        coord.enlist_participant(txid, Branch(bank))
        coord.commit_transaction(txid)
        assert passes and passes[0].in_doubt == []
    assert bank.committed == {txid} and bank.rolled_back == set()
