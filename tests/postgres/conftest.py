"""A real PostgreSQL 15 server for the PostgreSQL participant tests (tests/pg_server.py).

One server per test session, started on first use and stopped at the end; every test gets
two fresh databases (``bank_a_<n>``, ``bank_b_<n>``) with an ``accounts`` table. These
tests never skip: without server binaries they fail and say how to install them.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server

from pg_server import PgServer, PgServerError, find_bindir

from dtc_wal.participants.postgres import FORMAT_ID, gtrid_prefix

SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
CREATE FUNCTION refuse_overdraft() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance < 0 THEN
        RAISE EXCEPTION 'account % would be overdrawn', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
-- Deferred: checked at COMMIT or PREPARE TRANSACTION, so an overdraft makes PREPARE fail.
CREATE CONSTRAINT TRIGGER no_overdraft AFTER INSERT OR UPDATE ON accounts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_overdraft();
INSERT INTO accounts VALUES (1, 100), (2, 0);
"""

_numbers = itertools.count(1)


def start_server(settings: dict[str, str]) -> PgServer:
    try:
        bindir = find_bindir()
    except PgServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    return PgServer.start(settings, bindir=bindir)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """PostgreSQL with ``max_prepared_transactions = 10``, for the whole session."""
    server = start_server({"max_prepared_transactions": "10"})
    try:
        yield server
    finally:
        server.destroy()


@dataclass
class Bank:
    """Two databases of one server, each with accounts 1 (balance 100) and 2 (balance 0)."""

    server: PgServer
    db_a: str
    db_b: str
    coordinator_id: str

    @property
    def conninfo_a(self) -> str:
        return self.server.conninfo(self.db_a)

    @property
    def conninfo_b(self) -> str:
        return self.server.conninfo(self.db_b)

    def conninfo(self, db: str) -> str:
        return self.server.conninfo(db)

    def balance(self, db: str, account: int = 1) -> int:
        with psycopg.connect(self.conninfo(db)) as conn:
            row = conn.execute("SELECT balance FROM accounts WHERE id = %s", (account,)).fetchone()
        assert row is not None
        return int(row[0])

    def balances(self) -> tuple[int, int]:
        """(account 1 in A, account 2 in B): a transfer moves money from the first to the
        second, so they always add up to 100."""
        return self.balance(self.db_a, 1), self.balance(self.db_b, 2)

    def prepared(self, db: str | None = None) -> list[str]:
        """gids in pg_prepared_xacts (of database ``db``, or of both bank databases)."""
        dbs = [db] if db else [self.db_a, self.db_b]
        with psycopg.connect(self.server.conninfo("postgres")) as conn:
            rows = conn.execute(
                "SELECT gid FROM pg_prepared_xacts WHERE database = ANY(%s) ORDER BY prepared",
                (dbs,),
            ).fetchall()
        return [r[0] for r in rows]

    def prepare_orphan(
        self, db: str, txid: str, coordinator_id: str | None = None, account: int = 99
    ) -> str:
        """PREPARE TRANSACTION a branch (inserting ``account``) with no coordinator at all.
        Two orphans in one database need different accounts, or the second one waits for
        the first's lock on the key forever."""
        gtrid = gtrid_prefix(coordinator_id or self.coordinator_id) + txid
        conn = psycopg.connect(self.conninfo(db))
        try:
            xid = conn.xid(FORMAT_ID, gtrid, db)
            conn.tpc_begin(xid)
            conn.execute("INSERT INTO accounts VALUES (%s, 1)", (account,))
            conn.tpc_prepare()
        finally:
            conn.close()  # not `with`: leaving it would try to commit
        return str(xid)

    def has_account(self, db: str, account: int) -> bool:
        with psycopg.connect(self.conninfo(db)) as conn:
            row = conn.execute("SELECT 1 FROM accounts WHERE id = %s", (account,)).fetchone()
        return row is not None


def _roll_back_leftovers(server: PgServer, dbs: list[str]) -> None:
    """Keep prepared transactions of a failed test from eating the server's 10 slots."""
    for db in dbs:
        with psycopg.connect(server.conninfo(db), autocommit=True) as conn:
            gids = conn.execute(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
            ).fetchall()
            for (gid,) in gids:
                conn.execute(f"ROLLBACK PREPARED '{gid}'".encode())


@pytest.fixture
def bank(pg_server: PgServer) -> Iterator[Bank]:
    n = next(_numbers)
    dbs = [f"bank_a_{n}", f"bank_b_{n}"]
    for db in dbs:
        pg_server.create_database(db)
        with psycopg.connect(pg_server.conninfo(db)) as conn:
            conn.execute(SCHEMA.encode())
    bank = Bank(pg_server, dbs[0], dbs[1], f"t{n}-{uuid.uuid4().hex[:8]}")
    try:
        yield bank
    finally:
        _roll_back_leftovers(pg_server, dbs)
