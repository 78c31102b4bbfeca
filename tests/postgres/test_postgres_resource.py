"""PostgresResource as a PreparedResource: listing this coordinator's prepared branches of
its own database, and settling orphans (prepared, with no log entry) by gid."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import Bank

from dtc_wal import ParticipantRegistry, TransactionCoordinator
from dtc_wal.participant import PreparedResource
from dtc_wal.participants import PostgresParticipantError
from dtc_wal.participants.postgres import PostgresParticipant, PostgresResource


def new_txid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def resource_a(bank: Bank) -> Iterator[PostgresResource]:
    resource = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id)
    yield resource
    resource.close()


def test_is_a_prepared_resource(resource_a: PostgresResource) -> None:
    assert isinstance(resource_a, PreparedResource)


def test_orphan_is_listed_and_rolled_back(bank: Bank, resource_a: PostgresResource) -> None:
    txid = new_txid()
    bank.prepare_orphan(bank.db_a, txid)
    assert resource_a.prepared_transactions() == [txid]
    resource_a.rollback_prepared(txid)
    resource_a.rollback_prepared(txid)  # gone: a no-op
    assert resource_a.prepared_transactions() == []
    assert bank.prepared() == []
    assert not bank.has_account(bank.db_a, 99)


def test_decided_orphan_is_committed(bank: Bank, resource_a: PostgresResource) -> None:
    txid = new_txid()
    bank.prepare_orphan(bank.db_a, txid)
    resource_a.commit_prepared(txid)
    resource_a.commit_prepared(txid)
    assert bank.prepared() == []
    assert bank.has_account(bank.db_a, 99)


def test_lists_only_this_coordinator_and_this_database(
    bank: Bank, resource_a: PostgresResource
) -> None:
    ours, other_coordinator, other_db = new_txid(), new_txid(), new_txid()
    bank.prepare_orphan(bank.db_a, ours)
    bank.prepare_orphan(bank.db_a, other_coordinator, coordinator_id="someone-else", account=98)
    bank.prepare_orphan(bank.db_b, other_db)
    conn = psycopg.connect(bank.conninfo_a)  # a gid that is not an XA triple at all
    conn.tpc_begin("plain-gid-" + ours)
    conn.tpc_prepare()
    conn.close()
    assert resource_a.prepared_transactions() == [ours]
    resource_a.rollback_prepared(other_coordinator)  # not ours: left alone
    resource_a.rollback_prepared(other_db)  # another database: its own resource's job
    assert len(bank.prepared(bank.db_a)) == 3
    assert len(bank.prepared(bank.db_b)) == 1
    resource_b = PostgresResource(bank.conninfo_b, coordinator_id=bank.coordinator_id)
    assert resource_b.prepared_transactions() == [other_db]
    resource_b.close()


def test_every_branch_of_a_transaction_in_the_database_is_settled(
    bank: Bank, resource_a: PostgresResource
) -> None:
    txid = new_txid()
    for branch, account in (("left", 7), ("right", 8)):
        with PostgresParticipant(
            bank.conninfo_a, coordinator_id=bank.coordinator_id, branch=branch
        ) as p:
            with p.branch(txid) as cur:
                cur.execute("INSERT INTO accounts VALUES (%s, 0)", (account,))
            p.prepare(txid, {})
    assert resource_a.prepared_transactions() == [txid]  # listed once
    resource_a.commit_prepared(txid)
    assert bank.prepared() == []
    assert bank.has_account(bank.db_a, 7) and bank.has_account(bank.db_a, 8)


def test_prepared_branch_of_the_participant_is_listed(
    bank: Bank, resource_a: PostgresResource
) -> None:
    txid = new_txid()
    p = resource_a.begin(txid)
    p.connection.execute("UPDATE accounts SET balance = 1 WHERE id = 1")
    assert resource_a.prepared_transactions() == []  # open, not prepared
    p.prepare(txid, {})
    assert resource_a.prepared_transactions() == [txid]
    resource_a.rollback_prepared(txid)
    p.rollback(txid)  # the participant's own rollback then finds it gone: a no-op
    assert bank.balance(bank.db_a) == 100
    assert resource_a.live_transactions() == []


def test_registry_factory_returns_the_live_participant(
    bank: Bank, resource_a: PostgresResource
) -> None:
    registry = ParticipantRegistry()
    resource_a.register(registry, "bank_a")
    assert registry.resources()["bank_a"]() is resource_a
    txid = new_txid()
    live = resource_a.begin(txid)
    assert registry.create("bank_a", {"txid": txid}) is live
    assert resource_a.live_transactions() == [txid]
    live.rollback(txid)
    assert resource_a.live_transactions() == []
    # After the branch is finished (or after a restart) the factory builds a new one.
    rebuilt = registry.create("bank_a", {"txid": txid})
    assert isinstance(rebuilt, PostgresParticipant) and rebuilt is not live
    rebuilt.rollback(txid)  # nothing prepared: no-op
    assert resource_a.live_transactions() == []


def test_enlist_needs_a_registered_resource(
    bank: Bank, resource_a: PostgresResource, tmp_path: Path
) -> None:
    with TransactionCoordinator(tmp_path / "log") as coord:
        txid = coord.begin_transaction()
        with pytest.raises(PostgresParticipantError, match="register the resource first"):
            resource_a.enlist(coord, txid)
        coord.rollback_transaction(txid)


def test_close_releases_open_branches(bank: Bank) -> None:
    resource = PostgresResource(bank.conninfo_a, coordinator_id=bank.coordinator_id)
    txid = new_txid()
    with resource.branch(txid) as cur:
        cur.execute("UPDATE accounts SET balance = 1 WHERE id = 1")
    resource.close()
    assert resource.live_transactions() == []
    assert bank.balance(bank.db_a) == 100
    assert bank.prepared() == []
