"""What the PostgreSQL participant and resource share: the xid format and a few helpers."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ..errors import PostgresParticipantError, PreparedTransactionsDisabledError

log = logging.getLogger("dtc_wal.participants")

#: XA format id of every xid dtc-wal creates: ASCII "DTC1".
FORMAT_ID = 0x44544331
_COORDINATOR_ID = re.compile(r"[A-Za-z0-9_.-]{1,23}")
MAX_XID_PART = 64

Connection = psycopg.Connection[Any]


def gtrid_prefix(coordinator_id: str) -> str:
    """The start of every gtrid written for ``coordinator_id``: ``dtc:<coordinator_id>:``.

    A coordinator id is 1-23 characters of letters, digits, ``_``, ``.`` and ``-``, so that
    the prefix plus a 36-character UUID fits the 64-character gtrid of an XA xid.
    """
    if not isinstance(coordinator_id, str) or not _COORDINATOR_ID.fullmatch(coordinator_id):
        raise PostgresParticipantError(
            f"coordinator_id {coordinator_id!r} is not 1-23 characters of letters, digits, "
            "'_', '.' or '-'; pick a short stable name, unique per coordinator log"
        )
    return f"dtc:{coordinator_id}:"


def default_name(conninfo: str) -> str:
    try:
        dbname = psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname")
    except psycopg.ProgrammingError:
        dbname = None
    return f"postgres:{dbname}" if dbname else "postgres"


def is_gone(exc: BaseException) -> bool:
    """True for "prepared transaction with identifier ... does not exist"."""
    return isinstance(exc, pg_errors.UndefinedObject)


def check_prepared_transactions_enabled(conn: Connection) -> None:
    row = conn.execute("SELECT current_setting('max_prepared_transactions')::int").fetchone()
    conn.rollback()  # leave the connection idle: tpc_begin and COMMIT PREPARED need that
    if row is None or row[0] <= 0:
        raise PreparedTransactionsDisabledError(
            f"PostgreSQL server {conn.info.host}:{conn.info.port} has "
            "max_prepared_transactions = 0, so PREPARE TRANSACTION is disabled; set it to at "
            "least the number of transactions that may be prepared at once (e.g. "
            "max_connections) in postgresql.conf and restart the server"
        )


def recover_or_reset(conn: Connection, reset: Callable[[], None]) -> None:
    """After a failed statement: end the failed transaction, or drop a broken connection."""
    if not (conn.broken or conn.closed):
        try:
            conn.rollback()
            return
        except psycopg.Error as exc:
            log.warning("rolling back a failed statement failed: %s", exc)
    reset()


def close_quietly(conn: Connection | None, txid: str | None) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except psycopg.Error as exc:  # the connection is being thrown away anyway
        log.warning("txid=%s closing a PostgreSQL connection failed: %s", txid, exc)
