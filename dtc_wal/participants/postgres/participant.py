"""PostgresParticipant: one two-phase-commit branch on one PostgreSQL database."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from ...errors import TransientError, VoteNo
from ..errors import PostgresParticipantError, PreparedTransactionsDisabledError
from ._xid import (
    FORMAT_ID,
    MAX_XID_PART,
    Connection,
    check_prepared_transactions_enabled,
    close_quietly,
    default_name,
    gtrid_prefix,
    is_gone,
    recover_or_reset,
)

__all__ = ["PostgresParticipant"]

log = logging.getLogger("dtc_wal.participants")


class PostgresParticipant:
    """A two-phase-commit branch on one PostgreSQL database, one transaction at a time.

    ``conninfo`` is a libpq connection string (``connect_kwargs`` go to
    :func:`psycopg.connect`); the connection opens on first use. ``coordinator_id`` names the
    coordinator (the same for every participant and resource of one coordinator log, and
    different between logs); ``branch`` is the xid's branch qualifier, by default the
    database name: two branches of one transaction on the same server need different ones.

    >>> participant = PostgresParticipant("dbname=bank", coordinator_id="shop")  # doctest: +SKIP
    >>> with participant.branch(txid) as cur:                                    # doctest: +SKIP
    ...     cur.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1")
    >>> coordinator.enlist_participant(txid, participant, name="bank")           # doctest: +SKIP

    Enlisted like this it cannot be rebuilt after a coordinator crash; enlist through a
    :class:`PostgresResource` registered with the coordinator's registry for that.
    Thread-safe: calls are serialised on the participant.
    """

    lists_prepared = False
    """True when a registered :class:`PostgresResource` lists this participant's prepared
    branches (set by the resource): the coordinator then skips its forced opening write."""

    def __init__(
        self,
        conninfo: str = "",
        *,
        coordinator_id: str,
        branch: str | None = None,
        name: str | None = None,
        connect_kwargs: Mapping[str, Any] | None = None,
        close_when_done: bool = False,
        on_finished: Callable[[str], None] | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.coordinator_id = coordinator_id
        self.prefix = gtrid_prefix(coordinator_id)
        if branch is not None and not 0 < len(branch) <= MAX_XID_PART:
            raise PostgresParticipantError("a branch qualifier is 1-64 characters")
        self._branch = branch
        self.name = name or branch or default_name(conninfo)
        self.connect_kwargs = dict(connect_kwargs or {})
        self.close_when_done = close_when_done
        self._on_finished = on_finished
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._checked = False
        self._txid: str | None = None  # the branch open or prepared on self._conn
        self._prepared = False

    # -- connection and ids ------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The participant's connection (opened on first use, not autocommit). Run the
        branch's SQL on it between :meth:`begin` and the coordinator's ``prepare``."""
        with self._lock:
            self._check_session()
            if self._conn is None:
                self._conn = psycopg.connect(self.conninfo, **self.connect_kwargs)
            return self._conn

    def xid(self, txid: str) -> psycopg.Xid:
        """The XA xid of this participant's branch of ``txid``."""
        gtrid = self.prefix + txid
        if len(gtrid) > MAX_XID_PART:
            raise PostgresParticipantError(
                f"gtrid {gtrid!r} is longer than 64 characters; use a shorter coordinator_id"
            )
        return self.connection.xid(FORMAT_ID, gtrid, self.branch_qualifier)

    def gid(self, txid: str) -> str:
        """The PostgreSQL gid (as in ``pg_prepared_xacts.gid``) of the branch of ``txid``."""
        return str(self.xid(txid))

    @property
    def branch_qualifier(self) -> str:
        return self._branch or self.connection.info.dbname

    @property
    def current_transaction(self) -> str | None:
        """The transaction id whose branch is open or prepared on the connection, if any."""
        return self._txid

    # -- the branch -------------------------------------------------------------------------------

    def begin(self, txid: str) -> None:
        """Start the branch of ``txid`` (``tpc_begin``); a no-op when it is already open.

        Raises :class:`PreparedTransactionsDisabledError` when the server cannot prepare.
        """
        with self._lock:
            if self._txid == txid:
                return
            if self._txid is not None:
                raise PostgresParticipantError(
                    f"this participant holds the branch of {self._txid}; a participant has "
                    "one transaction at a time -- use one participant per transaction"
                )
            conn = self.connection
            if not self._checked:
                check_prepared_transactions_enabled(conn)
                self._checked = True
            xid = self.xid(txid)
            conn.tpc_begin(xid)
            self._txid, self._prepared = txid, False
        log.debug("txid=%s branch %s begun", txid, xid, extra={"txid": txid})

    @contextlib.contextmanager
    def branch(self, txid: str) -> Iterator[psycopg.Cursor[Any]]:
        """Begin (or continue) the branch of ``txid`` and yield a cursor on it. An exception
        inside rolls the branch back (so its prepare will vote no) and propagates."""
        self.begin(txid)
        try:
            with self.connection.cursor() as cur:
                yield cur
        except BaseException:
            try:
                self.rollback(txid)
            except psycopg.Error as exc:  # keep the caller's exception, not this one
                log.warning(
                    "txid=%s rolling back the branch on %s failed: %s",
                    txid,
                    self.name,
                    exc,
                    extra={"txid": txid},
                )
            raise

    # -- the participant protocol ----------------------------------------------------------------

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        """``PREPARE TRANSACTION``: vote yes when the branch is durable on the server."""
        txid = transaction_id
        with self._lock:
            self._check_session()
            if self._txid == txid and self._prepared:
                return
            if self._txid is None:
                self._prepare_elsewhere(txid)
                return
            if self._txid != txid:
                raise VoteNo(
                    f"{self.name} holds the branch of {self._txid}, not of {txid}: "
                    "a participant has one transaction at a time"
                )
            conn = self.connection
            status = conn.info.transaction_status
            if status != TransactionStatus.INTRANS:
                # PREPARE TRANSACTION in a failed transaction block "succeeds" as a ROLLBACK
                # and outside a block as a warning: either way nothing would be prepared.
                self._reset()
                raise VoteNo(
                    f"{self.name}: the branch of {txid} is {status.name.lower()}, not in "
                    "progress (a statement in it failed, or it was ended by hand); the "
                    "server rolled it back"
                )
            try:
                conn.tpc_prepare()
            except psycopg.Error as exc:
                self._prepare_failed(txid, conn, exc)
            self._prepared = True
        log.debug("txid=%s prepared on %s", txid, self.name, extra={"txid": txid})

    def _prepare_failed(self, txid: str, conn: Connection, exc: psycopg.Error) -> None:
        broken = conn.broken or conn.closed
        self._reset()  # psycopg keeps the failed xid on the connection; start afresh
        if broken:
            # Whether PREPARE reached the server is unknown: a retried prepare finds out.
            raise TransientError(f"{self.name}: connection lost during prepare ({exc})") from exc
        if "prepared transactions are disabled" in str(exc):
            raise PreparedTransactionsDisabledError(
                f"{self.name}: {exc}; set max_prepared_transactions > 0 and restart the server"
            ) from exc
        if isinstance(exc, pg_errors.DuplicateObject):
            raise VoteNo(
                f"{self.name}: gid of {txid} already in use on the server ({exc}); give each "
                "branch of one transaction on the same server its own branch name"
            ) from exc
        # PREPARE failed on the server (e.g. a deferred constraint): the server rolled back.
        raise VoteNo(f"{self.name}: PREPARE TRANSACTION failed: {exc}") from exc

    def _prepare_elsewhere(self, txid: str) -> None:
        """No branch of ``txid`` here: fine only if an earlier attempt prepared it."""
        if self._is_prepared_on_server(txid):
            log.info("txid=%s found already prepared on %s", txid, self.name, extra={"txid": txid})
            return
        raise VoteNo(
            f"{self.name} has no branch of {txid}: no work was done in it (begin the branch "
            "before enlisting), its connection was lost, or its rollback arrived first"
        )

    def commit(self, transaction_id: str) -> None:
        """``COMMIT PREPARED``; a no-op when the branch is no longer prepared."""
        self._finish(transaction_id, commit=True)

    def rollback(self, transaction_id: str) -> None:
        """Roll back the open or prepared branch; a no-op when there is none (also for a
        transaction never prepared here: null compensation)."""
        self._finish(transaction_id, commit=False)

    def _finish(self, txid: str, *, commit: bool) -> None:
        action = "commit" if commit else "rollback"
        with self._lock:
            self._check_session()
            if self._txid != txid:
                self._finish_by_gid(txid, commit)
                self._finished(txid)
                return
            if commit and not self._prepared:
                raise PostgresParticipantError(
                    f"commit of {txid} on {self.name} before its prepare: two-phase commit "
                    "commits only prepared branches (the coordinator's prepare comes first)"
                )
            conn = self.connection
            try:
                if commit:
                    conn.tpc_commit()
                else:
                    conn.tpc_rollback()
            except psycopg.Error as exc:
                prepared = self._prepared
                self._reset()
                if is_gone(exc):
                    log.info("txid=%s %s: already finished", txid, action, extra={"txid": txid})
                elif prepared:
                    raise  # still prepared on the server: the retry goes by gid
                else:  # an unprepared branch dies with its session
                    log.info("txid=%s %s: session ended", txid, action, extra={"txid": txid})
            else:
                self._txid, self._prepared = None, False
                if self.close_when_done:
                    self.close()
            self._finished(txid)
        log.debug("txid=%s %s done on %s", txid, action, self.name, extra={"txid": txid})

    def _finished(self, txid: str) -> None:
        if self._on_finished is not None:
            self._on_finished(txid)

    def _finish_by_gid(self, txid: str, commit: bool) -> None:
        gid = self.gid(txid)
        with self._spare_connection() as conn:
            try:
                if commit:
                    conn.tpc_commit(gid)
                else:
                    conn.tpc_rollback(gid)
            except pg_errors.UndefinedObject:
                log.info(
                    "txid=%s %s: %s is not prepared (already finished, or never prepared)",
                    txid,
                    "commit" if commit else "rollback",
                    gid,
                    extra={"txid": txid},
                )
                return
        log.info(
            "txid=%s %s by gid %s",
            txid,
            "committed" if commit else "rolled back",
            gid,
            extra={"txid": txid},
        )

    def _is_prepared_on_server(self, txid: str) -> bool:
        gid = self.gid(txid)
        with self._spare_connection() as conn:
            row = conn.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", (gid,)).fetchone()
            conn.rollback()
        return row is not None

    @contextlib.contextmanager
    def _spare_connection(self) -> Iterator[Connection]:
        """The participant's connection when it holds no branch, else a temporary one."""
        if self._txid is None:
            conn = self.connection
            try:
                yield conn
            except psycopg.Error:
                recover_or_reset(conn, self._reset)
                raise
            finally:
                if self.close_when_done and self._txid is None:
                    self.close()
            return
        with psycopg.connect(self.conninfo, **self.connect_kwargs) as other:
            yield other

    # -- lifecycle --------------------------------------------------------------------------------

    def _check_session(self) -> None:
        if self._conn is not None and self._conn.closed:
            self._reset()  # a lost session took its open branch with it

    def _reset(self) -> None:
        """Forget the connection (closing it): psycopg's TPC state goes with it."""
        conn, txid = self._conn, self._txid
        self._conn, self._txid, self._prepared, self._checked = None, None, False, False
        close_quietly(conn, txid)

    def close(self) -> None:
        """Close the connection. An open, unprepared branch is rolled back by the server; a
        prepared one stays prepared until commit or rollback by gid (e.g. by recovery)."""
        with self._lock:
            self._reset()

    def __enter__(self) -> PostgresParticipant:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresParticipant(name={self.name!r}, coordinator_id={self.coordinator_id!r})"
