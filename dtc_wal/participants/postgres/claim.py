"""One coordinator id per database at a time: a PostgreSQL advisory lock guards it.

A :class:`~.resource.PostgresResource` settles every prepared branch carrying its
coordinator id that its log does not show decided-commit. Two coordinators (say, two
replicas of one service, each with its own log but the same configuration) using one id
on one database would therefore roll back each other's transactions -- after a commit
decision, too. So a resource claims its id before it hands out a participant or settles
anything: it takes the session advisory lock ``(FORMAT_ID, crc32(coordinator_id))`` in
its database on a connection of its own, held until the resource closes or its process
dies. A second process asking for the same claim waits up to ``grace`` seconds (a killed
predecessor's session may take a moment to end), then gets
:class:`~dtc_wal.participants.errors.CoordinatorIdInUseError` naming the holder. Resources
of one process share one claim per id and database.
"""

from __future__ import annotations

import threading
import time
import zlib
from typing import Any

import psycopg

from ..errors import CoordinatorIdInUseError
from ._xid import FORMAT_ID, Connection, close_quietly

__all__ = ["GRACE", "Claim", "claim", "lock_keys"]

GRACE = 5.0
"""Seconds a claim waits for another session to release the id before giving up."""


def lock_keys(coordinator_id: str) -> tuple[int, int]:
    """The two int4 keys of the advisory lock (the second as PostgreSQL's signed int4)."""
    crc = zlib.crc32(coordinator_id.encode())
    return FORMAT_ID, crc - (1 << 32) if crc >= 1 << 31 else crc


class Claim:
    """A held advisory lock on one coordinator id in one database."""

    def __init__(self, conn: Connection, coordinator_id: str) -> None:
        self.conn = conn
        self.coordinator_id = coordinator_id
        self.dbname = conn.info.dbname
        self.backend_pid = conn.info.backend_pid
        self.users = 1

    def alive(self) -> bool:
        """Whether the session holding the lock still answers (a cheap round trip)."""
        try:
            self.conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        with _lock:
            self.users -= 1
            if self.users > 0:
                return
            if self in _claims:
                _claims.remove(self)
        close_quietly(self.conn, None)  # ending the session releases the lock


_lock = threading.Lock()
_claims: list[Claim] = []  # claims held by this process


def claim(
    conninfo: str,
    coordinator_id: str,
    connect_kwargs: dict[str, Any] | None = None,
    grace: float = GRACE,
) -> Claim:
    """Claim ``coordinator_id`` in the database ``conninfo`` names; see the module doc."""
    key1, key2 = lock_keys(coordinator_id)
    deadline = time.monotonic() + grace
    while True:
        conn = psycopg.connect(conninfo, autocommit=True, **(connect_kwargs or {}))
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (key1, key2)).fetchone()
            if row is not None and row[0]:
                held = Claim(conn, coordinator_id)
                with _lock:
                    _claims.append(held)
                return held
            holders = _holders(conn, key1, key2)
            shared = _ours(holders, coordinator_id, conn.info.dbname)
            if shared is not None:
                close_quietly(conn, None)
                return shared
        except BaseException:
            close_quietly(conn, None)
            raise
        close_quietly(conn, None)
        if time.monotonic() >= deadline:
            raise CoordinatorIdInUseError(_in_use_message(coordinator_id, conninfo, holders))
        time.sleep(0.05)


def _ours(holders: list[tuple[int, str]], coordinator_id: str, dbname: str) -> Claim | None:
    with _lock:
        for held in _claims:
            same = held.coordinator_id == coordinator_id and held.dbname == dbname
            if same and any(pid == held.backend_pid for pid, _ in holders):
                held.users += 1
                return held
    return None


def _holders(conn: Connection, key1: int, key2: int) -> list[tuple[int, str]]:
    """(pid, who) of the sessions holding the lock: who is application_name@client_addr."""
    rows = conn.execute(
        """
        SELECT l.pid, coalesce(a.application_name, '') || '@' ||
               coalesce(host(a.client_addr), 'local socket')
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = %s::bigint::oid AND l.objid = (%s::bigint & 4294967295)::oid
        """,
        (key1, key2),
    ).fetchall()
    return [(int(pid), str(who)) for pid, who in rows]


def _in_use_message(coordinator_id: str, conninfo: str, holders: list[tuple[int, str]]) -> str:
    try:
        dbname = psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname") or "?"
    except psycopg.ProgrammingError:
        dbname = "?"
    who = ", ".join(f"backend pid {pid} ({name})" for pid, name in holders) or "another session"
    return (
        f"coordinator_id {coordinator_id!r} is in use in database {dbname!r} by {who}: "
        "two coordinators with one id would roll back each other's prepared transactions. "
        "Give every coordinator log its own coordinator_id (e.g. one per replica), or stop "
        "the other coordinator first"
    )
