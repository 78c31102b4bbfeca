"""PostgresResource: one database as a resource manager -- participants per transaction,
and the PreparedResource that recovery asks for orphans."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors

from ...registry import ParticipantRegistry
from ..errors import PostgresParticipantError
from ._xid import (
    FORMAT_ID,
    Connection,
    check_prepared_transactions_enabled,
    close_quietly,
    gtrid_prefix,
    recover_or_reset,
)
from .claim import GRACE, Claim, claim
from .participant import PostgresParticipant

if TYPE_CHECKING:
    from ...coordinator import TransactionCoordinator

__all__ = ["PostgresResource"]

log = logging.getLogger("dtc_wal.participants")


class PostgresResource:
    """One PostgreSQL database as a resource manager of one coordinator.

    Hands out participants (one per transaction) and lists what the database holds
    prepared for this coordinator, so recovery can finish or roll back orphans::

        bank = PostgresResource("host=/run/postgresql dbname=bank", coordinator_id="shop")
        bank.register(registry, "bank")   # participant factory + PreparedResource
        txid = coordinator.begin_transaction()
        with bank.branch(txid) as cur:
            cur.execute("UPDATE accounts SET balance = balance - 10 WHERE id = %s", (1,))
        bank.enlist(coordinator, txid)    # logs ("bank", {"txid": txid}): rebuildable
        coordinator.commit_transaction(txid)

    The connection string stays in code, never in the coordinator's log (it may hold a
    password): the log stores only the registry name and the transaction id.

    Before it hands out a participant or settles a prepared branch, the resource claims
    its ``coordinator_id`` in its database (an advisory lock, :mod:`.claim`): a second
    process using the same id there gets
    :class:`~dtc_wal.participants.errors.CoordinatorIdInUseError` after waiting
    ``claim_grace`` seconds, instead of rolling back this one's transactions.
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        coordinator_id: str,
        branch: str | None = None,
        connect_kwargs: Mapping[str, Any] | None = None,
        claim_grace: float = GRACE,
    ) -> None:
        self.conninfo = conninfo
        self.claim_grace = claim_grace
        self.coordinator_id = coordinator_id
        self.prefix = gtrid_prefix(coordinator_id)
        self.branch_name = branch
        self.name: str | None = None
        self.connect_kwargs = dict(connect_kwargs or {})
        # Participants by txid, from the branch's start until its commit or rollback.
        self._live: dict[str, PostgresParticipant] = {}
        self._lock = threading.RLock()  # guards _live
        self._conn_lock = threading.RLock()  # guards _conn; recovery's queries hold it
        self._conn: Connection | None = None
        self._claim: Claim | None = None
        self._claim_lock = threading.Lock()

    # -- participants ---------------------------------------------------------------------------

    def participant(self, txid: str) -> PostgresParticipant:
        """The participant for ``txid``: the one whose branch is open in this process, or a
        new one (after a restart) that can still commit or roll back the branch by gid.
        This is the registry factory: ``factory(txid=...)``."""
        with self._lock:
            found = self._live.get(txid)
            if found is not None:
                return found
        self._claimed()
        with self._lock:
            found = self._live.get(txid)
            if found is not None:
                return found
            participant = PostgresParticipant(
                self.conninfo,
                coordinator_id=self.coordinator_id,
                branch=self.branch_name,
                name=self.name,
                connect_kwargs=self.connect_kwargs,
                close_when_done=True,
                on_finished=self._forget,
            )
            # Registered as a PreparedResource, this resource lists the branch's prepared
            # state, so the coordinator may skip its forced opening write.
            participant.lists_prepared = self.name is not None
            self._live[txid] = participant
            return participant

    def _claimed(self, verify: bool = False) -> None:
        """Hold the claim on this coordinator id (``verify``: and check its session is
        still there, claiming again when it is not)."""
        with self._claim_lock:
            held = self._claim
            if held is not None and (not verify or held.alive()):
                return
            if held is not None:
                log.warning(
                    "resource %s: the session holding coordinator_id %r ended; claiming again",
                    self.name,
                    self.coordinator_id,
                )
                held.release()
                self._claim = None
            self._claim = claim(
                self.conninfo, self.coordinator_id, self.connect_kwargs, self.claim_grace
            )

    def _forget(self, txid: str) -> None:
        with self._lock:
            self._live.pop(txid, None)

    def live_transactions(self) -> list[str]:
        """Transaction ids whose participant this resource holds (branch not finished)."""
        with self._lock:
            return list(self._live)

    def begin(self, txid: str) -> PostgresParticipant:
        """Open (or find) the branch of ``txid`` and return its participant."""
        participant = self.participant(txid)
        participant.begin(txid)
        return participant

    @contextlib.contextmanager
    def branch(self, txid: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in the branch of ``txid``; see :meth:`PostgresParticipant.branch`."""
        with self.participant(txid).branch(txid) as cur:
            yield cur

    def register(self, registry: ParticipantRegistry, name: str) -> None:
        """Register the participant factory and this resource under ``name``."""
        registry.register(name, self.participant)
        registry.register_resource(name, lambda: self)
        self.name = name

    def enlist(self, coordinator: TransactionCoordinator, txid: str) -> str:
        """Enlist the branch of ``txid`` in ``coordinator`` by registry name (recoverable)."""
        if self.name is None:
            raise PostgresParticipantError(
                "register the resource first (resource.register(registry, name)) with the "
                "registry the coordinator was opened with"
            )
        return coordinator.enlist_participant(txid, self.name, params={"txid": txid})

    # -- PreparedResource ----------------------------------------------------------------------

    def prepared_transactions(self) -> list[str]:
        """Transaction ids of this coordinator prepared in this database (each once)."""
        return list(dict.fromkeys(txid for txid, _gid in self._prepared()))

    def commit_prepared(self, transaction_id: str) -> None:
        """``COMMIT PREPARED`` every branch of ``transaction_id`` in this database."""
        self._finish_prepared(transaction_id, commit=True)

    def rollback_prepared(self, transaction_id: str) -> None:
        """``ROLLBACK PREPARED`` every branch of ``transaction_id`` in this database."""
        self._finish_prepared(transaction_id, commit=False)

    def check(self) -> None:
        """Connect and raise :class:`PreparedTransactionsDisabledError` when the server
        cannot prepare transactions, :class:`CoordinatorIdInUseError` when another process
        uses this coordinator id in the database. Call it at start-up to fail early."""
        with self._connection() as conn:
            check_prepared_transactions_enabled(conn)
        self._claimed(verify=True)

    def _prepared(self) -> list[tuple[str, str]]:
        self._claimed(verify=True)  # never settle branches of an id another process uses
        with self._connection() as conn:
            xids = conn.tpc_recover()
            dbname = conn.info.dbname
        found = [
            (xid.gtrid[len(self.prefix) :], str(xid))
            for xid in xids
            if xid.format_id == FORMAT_ID
            and xid.database == dbname
            and xid.gtrid.startswith(self.prefix)
        ]
        return found

    def _finish_prepared(self, txid: str, *, commit: bool) -> None:
        action = "COMMIT" if commit else "ROLLBACK"
        gids = [gid for found, gid in self._prepared() if found == txid]
        with self._connection() as conn:
            for gid in gids:
                try:
                    if commit:
                        conn.tpc_commit(gid)
                    else:
                        conn.tpc_rollback(gid)
                except pg_errors.UndefinedObject:
                    continue  # finished meanwhile (e.g. by the live participant)
                log.info(
                    "txid=%s %s PREPARED %s (recovery)", txid, action, gid, extra={"txid": txid}
                )

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        with self._conn_lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.conninfo, **self.connect_kwargs)
            conn = self._conn
            try:
                yield conn
            except psycopg.Error:
                recover_or_reset(conn, self._drop_connection)
                raise

    def _drop_connection(self) -> None:
        with self._conn_lock:
            close_quietly(self._conn, None)
            self._conn = None

    def close(self) -> None:
        """Close the resource's connection and those of its participants: open branches
        are rolled back by the server, prepared ones stay for recovery."""
        self._drop_connection()
        with self._lock:
            live, self._live = list(self._live.values()), {}
        for participant in live:
            participant.close()
        with self._claim_lock:
            held, self._claim = self._claim, None
        if held is not None:
            held.release()

    def __repr__(self) -> str:
        return f"PostgresResource(name={self.name!r}, coordinator_id={self.coordinator_id!r})"
