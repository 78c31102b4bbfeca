"""One coordinator id per database at a time (dtc_wal/participants/postgres/claim.py).

A second *process* using the same coordinator_id on the same database must be refused
before it can roll back the first one's prepared branches; resources of one process share
the claim; a killed holder's claim passes to the next process; a lost session is claimed
again. All on a real PostgreSQL server, with real processes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import Bank

from dtc_wal import ParticipantRegistry, TransactionCoordinator
from dtc_wal.participants import CoordinatorIdInUseError
from dtc_wal.participants.postgres import PostgresResource
from dtc_wal.participants.postgres.claim import lock_keys

HOLDER = textwrap.dedent(
    """
    import sys
    from dtc_wal.participants.postgres import PostgresResource
    resource = PostgresResource(sys.argv[1], coordinator_id=sys.argv[2])
    resource.check()  # claims the id
    print("claimed", flush=True)
    sys.stdin.read()  # hold it until the test closes stdin (or kills us)
    resource.close()
    """
)


@pytest.fixture
def holder(bank: Bank) -> Iterator[subprocess.Popen[str]]:
    """Another process whose resource holds ``bank.coordinator_id`` on database A."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, bank.conninfo_a, bank.coordinator_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "claimed"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _lock_holders(bank: Bank, db: str, coordinator_id: str) -> list[int]:
    key1, key2 = lock_keys(coordinator_id)
    with psycopg.connect(bank.conninfo(db)) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 2 AND classid = %s::bigint::oid "
            "AND objid = (%s::bigint & 4294967295)::oid "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (key1, key2),
        ).fetchall()
    return [int(r[0]) for r in rows]


def test_a_second_process_with_the_same_id_is_refused_and_settles_nothing(
    bank: Bank, holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    txid = str(uuid.uuid4())
    orphan = bank.prepare_orphan(bank.db_a, txid)  # a branch the holder might still decide
    second = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id, claim_grace=0.2)
    try:
        with pytest.raises(CoordinatorIdInUseError, match="backend pid") as info:
            second.check()
        assert repr(bank.coordinator_id) in str(info.value)
        assert "own coordinator_id" in str(info.value)
        with pytest.raises(CoordinatorIdInUseError):
            second.participant(str(uuid.uuid4()))
        with pytest.raises(CoordinatorIdInUseError):
            second.prepared_transactions()

        # a coordinator using it: its recovery reports the resource, and rolls back nothing
        registry = ParticipantRegistry()
        second.register(registry, "bank")
        with TransactionCoordinator(
            tmp_path / "log", registry=registry, recovery_interval=None
        ) as coord:
            report = coord.last_recovery_report
            assert [(d.txid, d.participant) for d in report.in_doubt] == [("*", "bank")]
            assert "is in use" in (report.in_doubt[0].error or "")
        assert bank.prepared(bank.db_a) == [orphan]
    finally:
        second.close()


def test_the_claim_passes_on_when_the_holder_is_killed(
    bank: Bank, holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    txid = str(uuid.uuid4())
    bank.prepare_orphan(bank.db_a, txid)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    resource = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id)
    registry = ParticipantRegistry()
    resource.register(registry, "bank")
    try:
        # the killed session may linger a moment: the claim waits for it (claim_grace)
        with TransactionCoordinator(
            tmp_path / "log", registry=registry, recovery_interval=None
        ) as coord:
            assert coord.last_recovery_report.in_doubt == []
        assert bank.prepared(bank.db_a) == []  # the orphan was rolled back
        assert len(_lock_holders(bank, bank.db_a, bank.coordinator_id)) == 1
    finally:
        resource.close()
    assert _lock_holders(bank, bank.db_a, bank.coordinator_id) == []


def test_resources_of_one_process_share_the_claim(bank: Bank) -> None:
    first = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id)
    second = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id, branch="b2")
    try:
        first.check()
        second.check()
        assert second.prepared_transactions() == []
        (pid,) = _lock_holders(bank, bank.db_a, bank.coordinator_id)
        first.close()
        assert _lock_holders(bank, bank.db_a, bank.coordinator_id) == [pid]  # second uses it
    finally:
        first.close()
        second.close()
    assert _lock_holders(bank, bank.db_a, bank.coordinator_id) == []


def test_other_ids_and_other_databases_do_not_conflict(
    bank: Bank, holder: subprocess.Popen[str]
) -> None:
    other_id = PostgresResource(bank.conninfo_a, coordinator_id="other-" + bank.coordinator_id[:10])
    other_db = PostgresResource(bank.conninfo_b, coordinator_id=bank.coordinator_id)
    try:
        other_id.check()
        other_db.check()
        assert other_db.prepared_transactions() == []
    finally:
        other_id.close()
        other_db.close()


def test_a_lost_session_is_claimed_again(bank: Bank, caplog: pytest.LogCaptureFixture) -> None:
    resource = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id)
    try:
        resource.check()
        (pid,) = _lock_holders(bank, bank.db_a, bank.coordinator_id)
        with psycopg.connect(bank.conninfo_a, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with caplog.at_level(logging.WARNING, logger="dtc_wal.participants"):
            assert resource.prepared_transactions() == []
        assert "claiming again" in caplog.text
        (new_pid,) = _lock_holders(bank, bank.db_a, bank.coordinator_id)
        assert new_pid != pid
    finally:
        resource.close()
