"""PostgresParticipant against a real server: transfers between two databases through the
coordinator, failing prepares, idempotent commit/rollback, the gid format, lost
connections, and the error for max_prepared_transactions = 0."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Bank, start_server
from pg_server import PgServer

from dtc_wal import (
    ParticipantRegistry,
    TransactionAborted,
    TransactionCoordinator,
    TransientError,
    TxState,
    VoteNo,
)
from dtc_wal.participants import PostgresParticipantError, PreparedTransactionsDisabledError
from dtc_wal.participants.postgres import FORMAT_ID, PostgresParticipant, PostgresResource

ROOT = Path(__file__).resolve().parents[2]
DEBIT = "UPDATE accounts SET balance = balance - %s WHERE id = 1"
CREDIT = "UPDATE accounts SET balance = balance + %s WHERE id = 2"


def new_txid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def coord(tmp_path: Path) -> Iterator[TransactionCoordinator]:
    with TransactionCoordinator(tmp_path / "log", backoff_initial=0.001) as opened:
        yield opened


@pytest.fixture
def resources(bank: Bank) -> Iterator[tuple[PostgresResource, PostgresResource]]:
    a = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id)
    b = PostgresResource(bank.conninfo_b, coordinator_id=bank.coordinator_id)
    yield a, b
    a.close()
    b.close()


def participant(bank: Bank, db: str, **kwargs: Any) -> PostgresParticipant:
    return PostgresParticipant(bank.conninfo(db), coordinator_id=bank.coordinator_id, **kwargs)


# -- through the coordinator ----------------------------------------------------------------


def test_transfer_between_two_databases_commits_atomically(
    bank: Bank, tmp_path: Path, resources: tuple[PostgresResource, PostgresResource]
) -> None:
    registry = ParticipantRegistry()
    a, b = resources
    a.register(registry, "bank_a")
    b.register(registry, "bank_b")
    with TransactionCoordinator(tmp_path / "log", registry=registry) as coord:
        txid = coord.begin_transaction()
        with a.branch(txid) as cur:
            cur.execute(DEBIT, (30,))
        with b.branch(txid) as cur:
            cur.execute(CREDIT, (30,))
        # Nothing is visible before the commit.
        assert bank.balances() == (100, 0)
        assert a.enlist(coord, txid) == "bank_a"
        assert b.enlist(coord, txid) == "bank_b"
        coord.commit_transaction(txid)
        assert coord.state(txid) is TxState.COMMITTED
        view = coord.transaction(txid)
    assert bank.balances() == (70, 30)
    assert bank.prepared() == []
    # The log holds the registry name and the txid, never the connection string.
    assert {p.factory: p.params for p in view.participants.values()} == {
        "bank_a": {"txid": txid},
        "bank_b": {"txid": txid},
    }


def test_participants_enlisted_as_objects(bank: Bank, coord: TransactionCoordinator) -> None:
    with participant(bank, bank.db_a) as a, participant(bank, bank.db_b) as b:
        for amount in (10, 20):  # one participant object can serve transactions in turn
            txid = coord.begin_transaction()
            with a.branch(txid) as cur:
                cur.execute(DEBIT, (amount,))
            with b.branch(txid) as cur:
                cur.execute(CREDIT, (amount,))
            coord.enlist_participant(txid, a, name="a")
            coord.enlist_participant(txid, b, name="b")
            coord.commit_transaction(txid)
    assert bank.balances() == (70, 30)
    assert bank.prepared() == []


def test_failing_prepare_rolls_both_back(
    bank: Bank, coord: TransactionCoordinator, resources: tuple[PostgresResource, PostgresResource]
) -> None:
    a, b = resources
    coord.registry.register("a", a.participant)
    coord.registry.register("b", b.participant)
    txid = coord.begin_transaction()
    with a.branch(txid) as cur:
        cur.execute(DEBIT, (150,))  # overdraft: the deferred trigger refuses it at PREPARE
    with b.branch(txid) as cur:
        cur.execute(CREDIT, (150,))
    coord.enlist_participant(txid, "a", params={"txid": txid})
    coord.enlist_participant(txid, "b", params={"txid": txid})
    with pytest.raises(TransactionAborted, match="would be overdrawn") as caught:
        coord.commit_transaction(txid)
    assert isinstance(caught.value.cause, VoteNo)
    assert caught.value.pending == ()
    assert coord.state(txid) is TxState.ABORTED
    assert bank.balances() == (100, 0)
    assert bank.prepared() == []


class Refuses:
    """A third participant that votes no after both databases prepared."""

    name = "fraud-check"

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        raise VoteNo("looks like fraud")

    def commit(self, transaction_id: str) -> None:
        raise AssertionError("never committed")

    def rollback(self, transaction_id: str) -> None:
        pass


def test_no_vote_elsewhere_rolls_back_both_prepared_branches(
    bank: Bank, coord: TransactionCoordinator
) -> None:
    with participant(bank, bank.db_a) as a, participant(bank, bank.db_b) as b:
        txid = coord.begin_transaction()
        with a.branch(txid) as cur:
            cur.execute(DEBIT, (30,))
        with b.branch(txid) as cur:
            cur.execute(CREDIT, (30,))
        coord.enlist_participant(txid, a, name="a")
        coord.enlist_participant(txid, b, name="b")
        coord.enlist_participant(txid, Refuses())
        with pytest.raises(TransactionAborted, match="looks like fraud"):
            coord.commit_transaction(txid)
    assert bank.balances() == (100, 0)
    assert bank.prepared() == []


# -- the branch and its gid ----------------------------------------------------------------


def test_prepare_writes_our_gid_to_pg_prepared_xacts(bank: Bank) -> None:
    txid = new_txid()
    with participant(bank, bank.db_a) as a:
        with a.branch(txid) as cur:
            cur.execute(DEBIT, (5,))
        a.prepare(txid, {})
        gtrid = f"dtc:{bank.coordinator_id}:{txid}"
        expected = "_".join(
            [str(FORMAT_ID), *(base64.b64encode(s.encode()).decode() for s in (gtrid, bank.db_a))]
        )
        assert a.gid(txid) == expected
        assert bank.prepared() == [expected]
        assert bank.balance(bank.db_a) == 100  # prepared, not committed
        a.commit(txid)
    assert bank.prepared() == []
    assert bank.balance(bank.db_a) == 95


def test_commit_is_idempotent_also_from_a_new_participant(bank: Bank) -> None:
    txid = new_txid()
    with participant(bank, bank.db_a) as a:
        with a.branch(txid) as cur:
            cur.execute(DEBIT, (5,))
        a.prepare(txid, {})
        a.prepare(txid, {})  # a repeated prepare votes yes again
        a.commit(txid)
        a.commit(txid)
    with participant(bank, bank.db_a) as rebuilt:  # as after a restart: by gid
        rebuilt.commit(txid)
    assert bank.balance(bank.db_a) == 95
    assert bank.prepared() == []


def test_commit_by_gid_after_the_preparing_process_is_gone(bank: Bank) -> None:
    txid = new_txid()
    a = participant(bank, bank.db_a)
    with a.branch(txid) as cur:
        cur.execute(DEBIT, (5,))
    a.prepare(txid, {})
    a.close()  # the prepared branch outlives its session
    assert len(bank.prepared()) == 1
    with participant(bank, bank.db_a) as rebuilt:
        rebuilt.commit(txid)
        rebuilt.commit(txid)
    assert bank.balance(bank.db_a) == 95
    assert bank.prepared() == []


def test_rollback_is_idempotent(bank: Bank) -> None:
    txid = new_txid()
    with participant(bank, bank.db_a) as a:
        with a.branch(txid) as cur:
            cur.execute(DEBIT, (5,))
        a.prepare(txid, {})
        a.rollback(txid)
        a.rollback(txid)
    with participant(bank, bank.db_a) as rebuilt:
        rebuilt.rollback(txid)
    assert bank.balance(bank.db_a) == 100
    assert bank.prepared() == []


def test_rollback_before_prepare_then_late_prepare_votes_no(bank: Bank) -> None:
    never, open_branch = new_txid(), new_txid()
    with participant(bank, bank.db_a) as a:
        a.rollback(never)  # null compensation: nothing here, nothing to do
        with pytest.raises(VoteNo, match="no branch"):
            a.prepare(never, {})  # hanging prepare
        with a.branch(open_branch) as cur:
            cur.execute(DEBIT, (5,))
        a.rollback(open_branch)  # rolls back the open, unprepared branch
        with pytest.raises(VoteNo, match="no branch"):
            a.prepare(open_branch, {})
    assert bank.balance(bank.db_a) == 100
    assert bank.prepared() == []


def test_error_inside_the_branch_rolls_it_back(bank: Bank) -> None:
    txid = new_txid()
    with participant(bank, bank.db_a) as a:
        with pytest.raises(psycopg.errors.UndefinedColumn), a.branch(txid) as cur:
            cur.execute(DEBIT, (5,))
            cur.execute("UPDATE accounts SET no_such_column = 1")
        assert a.current_transaction is None
        with pytest.raises(VoteNo):
            a.prepare(txid, {})
    assert bank.balance(bank.db_a) == 100


def test_a_failed_statement_swallowed_inside_the_branch_votes_no(bank: Bank) -> None:
    # PREPARE TRANSACTION in a failed block would "succeed" as a ROLLBACK, preparing nothing.
    txid = new_txid()
    with participant(bank, bank.db_a) as a:
        a.begin(txid)
        a.connection.execute(DEBIT, (5,))
        with pytest.raises(psycopg.errors.DivisionByZero):
            a.connection.execute("SELECT 1 / 0")
        with pytest.raises(VoteNo, match="inerror"):
            a.prepare(txid, {})
        a.rollback(txid)
    assert bank.balance(bank.db_a) == 100
    assert bank.prepared() == []


def test_one_transaction_at_a_time(bank: Bank) -> None:
    first, second = new_txid(), new_txid()
    with participant(bank, bank.db_a) as a:
        a.begin(first)
        a.begin(first)  # again for the same transaction: fine
        with pytest.raises(PostgresParticipantError, match="one transaction at a time"):
            a.begin(second)
        with pytest.raises(VoteNo, match="holds the branch of"):
            a.prepare(second, {})
        # Phase two for another transaction still works, on a separate connection.
        a.rollback(second)
        a.rollback(first)


def test_two_branches_on_one_server_need_their_own_branch_names(bank: Bank) -> None:
    txid = new_txid()
    with (
        participant(bank, bank.db_a, branch="same") as a,
        participant(bank, bank.db_b, branch="same") as b,
    ):
        a.begin(txid)
        b.begin(txid)
        a.prepare(txid, {})
        with pytest.raises(VoteNo, match="already in use"):
            b.prepare(txid, {})
        a.rollback(txid)
        b.rollback(txid)
    assert bank.prepared() == []


# -- lost connections --------------------------------------------------------------------------


def terminate_backend(bank: Bank, conn: psycopg.Connection[Any]) -> None:
    pid = conn.info.backend_pid
    with psycopg.connect(bank.server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_connection_lost_before_prepare_votes_no_on_retry(bank: Bank) -> None:
    txid = new_txid()
    with participant(bank, bank.db_a) as a:
        with a.branch(txid) as cur:
            cur.execute(DEBIT, (5,))
        terminate_backend(bank, a.connection)
        with pytest.raises(TransientError, match="connection lost"):
            a.prepare(txid, {})
        with pytest.raises(VoteNo, match="no branch"):
            a.prepare(txid, {})  # the coordinator's retry: the work died with the session
        a.rollback(txid)
    assert bank.balance(bank.db_a) == 100


def test_connection_lost_after_prepare_then_commit_by_gid(bank: Bank) -> None:
    txid = new_txid()
    with participant(bank, bank.db_a) as a:
        with a.branch(txid) as cur:
            cur.execute(DEBIT, (5,))
        a.prepare(txid, {})
        terminate_backend(bank, a.connection)
        with pytest.raises(psycopg.OperationalError):
            a.commit(txid)
        a.prepare(txid, {})  # a retried prepare finds the branch prepared on the server
        a.commit(txid)  # the coordinator's retry goes by gid on a new connection
    assert bank.balance(bank.db_a) == 95
    assert bank.prepared() == []


# -- configuration errors ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_prepare_server() -> Iterator[PgServer]:
    server = start_server({"max_prepared_transactions": "0"})
    try:
        server.create_database("plain")
        yield server
    finally:
        server.destroy()


def test_max_prepared_transactions_zero_is_a_clear_error(no_prepare_server: PgServer) -> None:
    conninfo = no_prepare_server.conninfo("plain")
    with PostgresParticipant(conninfo, coordinator_id="c1") as p:
        with pytest.raises(PreparedTransactionsDisabledError, match="max_prepared_transactions"):
            p.begin(new_txid())
        assert p.current_transaction is None
    resource = PostgresResource(conninfo, coordinator_id="c1")
    with pytest.raises(PreparedTransactionsDisabledError, match="restart the server"):
        resource.check()
    assert resource.prepared_transactions() == []  # nothing can be prepared there
    resource.close()


def test_resource_check_passes_on_a_server_that_can_prepare(bank: Bank) -> None:
    resource = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id)
    resource.check()
    assert resource.prepared_transactions() == []
    resource.close()


@pytest.mark.parametrize("bad", ["", "has:colon", "x" * 24, "spa ce"])
def test_coordinator_id_is_validated(bad: str) -> None:
    with pytest.raises(PostgresParticipantError, match="coordinator_id"):
        PostgresParticipant("", coordinator_id=bad)
    with pytest.raises(PostgresParticipantError, match="coordinator_id"):
        PostgresResource("", coordinator_id=bad)


def test_gtrid_longer_than_64_characters_is_refused(bank: Bank) -> None:
    with participant(bank, bank.db_a) as a:
        with pytest.raises(PostgresParticipantError, match="longer than 64"):
            a.begin("x" * 60)
        assert a.current_transaction is None


def test_importing_dtc_wal_does_not_import_psycopg() -> None:
    code = (
        "import sys, dtc_wal, dtc_wal.participants, dtc_wal.recovery\n"
        "assert 'psycopg' not in sys.modules, sorted(m for m in sys.modules if 'psycopg' in m)\n"
        "import dtc_wal.participants.postgres\n"
        "assert 'psycopg' in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
