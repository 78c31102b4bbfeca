"""A coordinator process SIGKILLed at a crash point while it moves money between two
PostgreSQL databases; a new coordinator on the same log, with the registry's factories and
resources, must leave nothing in pg_prepared_xacts and the balances consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import Bank

from dtc_wal import ParticipantRegistry, TransactionCoordinator, TxState
from dtc_wal.errors import UnknownTransactionError
from dtc_wal.participants.postgres import PostgresResource
from dtc_wal.testing.crash_at import command as crash_at_command

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("crash_worker.py")

#: crash point -> (branches prepared at the kill, at least; outcome after recovery)
CASES = {
    "prepare.after-first": (1, TxState.ABORTED),
    "prepare.after-all": (2, TxState.ABORTED),
    "decision.after-commit-log": (2, TxState.COMMITTED),
    "commit.after-first": (0, TxState.COMMITTED),  # commits run in parallel
    "commit.after-all": (0, TxState.COMMITTED),
}


def registry_for(bank: Bank) -> tuple[ParticipantRegistry, list[PostgresResource]]:
    registry = ParticipantRegistry()
    resources = []
    for name, conninfo in (("bank_a", bank.conninfo_a), ("bank_b", bank.conninfo_b)):
        resource = PostgresResource(conninfo, coordinator_id=bank.coordinator_id)
        resource.register(registry, name)
        resources.append(resource)
    return registry, resources


def wait_until_sessions_gone(bank: Bank) -> None:
    """The killed process's backends end on their own; recover only once they have, so no
    PREPARE of the dead process is still executing on the server."""
    deadline = time.monotonic() + 30
    with psycopg.connect(bank.server.conninfo("postgres"), autocommit=True) as admin:
        while True:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)",
                ([bank.db_a, bank.db_b],),
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                pytest.fail("sessions of the killed coordinator did not end within 30s")
            time.sleep(0.02)


def run_worker(bank: Bank, log_dir: Path, crash_at: str) -> str:
    proc = subprocess.run(
        crash_at_command(
            crash_at,
            str(WORKER),
            str(log_dir),
            bank.conninfo_a,
            bank.conninfo_b,
            bank.coordinator_id,
        ),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    assert "committed" not in proc.stdout
    return proc.stdout.split()[0]


@pytest.mark.parametrize("crash_at", list(CASES))
def test_coordinator_killed_then_restarted(bank: Bank, tmp_path: Path, crash_at: str) -> None:
    prepared_at_kill, outcome = CASES[crash_at]
    log_dir = tmp_path / "log"
    txid = run_worker(bank, log_dir, crash_at)
    wait_until_sessions_gone(bank)
    assert len(bank.prepared()) >= prepared_at_kill  # the kill really came after PREPARE
    sum_before = sum(bank.balances())

    registry, resources = registry_for(bank)
    with TransactionCoordinator(log_dir, registry=registry, recovery_interval=None) as coord:
        report = coord.last_recovery_report
        try:
            assert coord.state(txid) is outcome
        except UnknownTransactionError:
            # Registered PostgresResources list what they hold prepared, so the opening
            # records were not forced before PREPARE: killed before the decision, the log
            # may not know the transaction -- its prepared branches are orphans, rolled
            # back by the resources (presumed abort).
            assert outcome is TxState.ABORTED
            assert {t for _, t, action in report.orphans if action == "rollback"} == {txid}
        assert coord.unfinished() == []
        assert list(report.in_doubt) == []
    for resource in resources:
        resource.close()

    assert bank.prepared() == []
    expected = (70, 30) if outcome is TxState.COMMITTED else (100, 0)
    assert bank.balances() == expected
    assert sum(bank.balances()) == sum_before == 100


def test_orphan_without_log_entry_is_rolled_back_at_start_up(bank: Bank, tmp_path: Path) -> None:
    orphan, foreign = str(uuid.uuid4()), str(uuid.uuid4())
    bank.prepare_orphan(bank.db_a, orphan)
    bank.prepare_orphan(bank.db_b, foreign, coordinator_id="another-coord")
    registry, resources = registry_for(bank)
    with TransactionCoordinator(tmp_path / "log", registry=registry) as coord:
        orphans = list(coord.last_recovery_report.orphans)
    for resource in resources:
        resource.close()
    assert orphans == [("bank_a", orphan, "rollback")]
    assert not bank.has_account(bank.db_a, 99)
    # Another coordinator's prepared branch is not ours to touch.
    assert len(bank.prepared(bank.db_b)) == 1
