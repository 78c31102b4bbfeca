"""What the facade asks of the engine besides running transactions: recovery passes, the
in-doubt listing, operator resolution and the state of one transaction (live or in the
log). :class:`~.engine.Engine` is built on this."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection

from ..clock import Clock
from ..errors import CoordinatorClosedError, TransactionStateError, UnknownTransactionError
from ..log import StoredTransaction, TransactionLog
from ..protocol import Member, Mode, Outcome, OutOfOrderError, Transaction, fold
from ..recovery.report import InDoubt, RecoveryReport
from ..registry import ParticipantRegistry
from . import report as words
from .counters import Counters
from .options import EngineOptions
from .recovery import plan_pass, recover_pass, transaction_of
from .resolve import check_resolution, resolve
from .run import Run
from .threaded import ThreadedDriver

__all__ = ["EngineOperations"]


class _LiveOrSkipped:
    """Txids to leave alone, the live set read when asked (a run may begin meanwhile)."""

    def __init__(self, live: Collection[str], skip: Collection[str]) -> None:
        self.live = live
        self.skip = skip

    def __contains__(self, txid: object) -> bool:
        return txid in self.skip or txid in self.live


class EngineOperations:
    """Recovery, in-doubt, resolution and inspection over the engine's runs and log."""

    log: TransactionLog
    registry: ParticipantRegistry
    options: EngineOptions
    clock: Clock
    driver: ThreadedDriver
    counters: Counters
    _live: dict[str, Run]
    _parked: dict[str, Run]
    _lock: threading.Lock
    _pass_lock: threading.Lock
    _closed: bool
    _damage_logged: set[str]

    # -- recovery ------------------------------------------------------------------------

    def recover(
        self,
        *,
        progress: Callable[[int, int], None] | None = None,
        dry_run: bool = False,
        skip: Collection[str] = (),
    ) -> RecoveryReport:
        """One recovery pass: the runs left here with members pending (their objects still
        live), then every unfinished transaction in the log that is not live here or in
        ``skip``; then orphan prepared branches (registered PreparedResources). One
        :class:`~dtc_wal.recovery.TransactionAction` per transaction examined,
        ``progress(done, total)`` after each. ``dry_run``: what a pass would do, nothing
        appended, called or built. Passes and resolutions run one at a time."""
        if self._closed:
            raise CoordinatorClosedError("the engine is closed")
        with self._pass_lock:
            with self._lock:
                parked = [run for txid, run in self._parked.items() if txid not in skip]
                if not dry_run:
                    for run in parked:
                        del self._parked[run.txid]
            taken = {run.txid for run in parked}
            stored = [s for s in self._unfinished(skip) if s.txid not in taken]
            if dry_run:
                return plan_pass(self.registry, parked, stored)
            try:
                report = recover_pass(
                    self.driver,
                    self.registry,
                    self.options.protocol,
                    parked,
                    stored,
                    progress,
                    _LiveOrSkipped(self._live, skip),
                    self.options.recovery_workers,
                    self._damage_logged,
                )
            finally:
                with self._lock:
                    for run in parked:
                        if run.finish is not None and run.finish.pending:
                            self._parked[run.txid] = run
        self.counters.add("recovery_passes")
        self.counters.add("recovered", len(report.finished))
        return report

    def in_doubt(self) -> list[InDoubt]:
        """The pending members of every unfinished transaction in the log not live here
        (``awaiting_recovery`` for those not tried yet), then one ``damaged`` entry per
        transaction that cannot be read back or folded. Drives nothing."""
        pending: list[InDoubt] = []
        damaged: list[InDoubt] = []
        for stored in self._unfinished(()):
            if stored.damage is not None:
                damaged.append(words.damaged(stored.txid, stored.damage, stored.records)[1])
                continue
            try:
                tx = fold(stored.records)
            except OutOfOrderError as exc:
                damaged.append(words.not_folding(stored.txid, exc, stored.records)[1])
                continue
            pending.extend(words.pending_of(tx))
        return pending + damaged

    def _unfinished(self, skip: Collection[str]) -> list[StoredTransaction]:
        """The log's unfinished transactions that are not live here nor in ``skip``.

        Invariant: a transaction is taken only if it was in the log *before* the live set
        was read and is not in it. A run joins the live set before its first record, so it
        was live then -- or had left it, and a txid never becomes live again; the second
        flush makes every record its run appended visible before the log is read again.
        """
        self.log.flush()
        candidates = {s.txid for s in self.log.unfinished()}
        with self._lock:
            live = set(self._live)
        self.log.flush()
        return [
            s
            for s in self.log.unfinished()
            if s.txid in candidates and s.txid not in live and s.txid not in skip
        ]

    # -- operators -------------------------------------------------------------------------

    def resolve(
        self,
        txid: str,
        outcome: Outcome,
        *,
        reason: str,
        member: str | None = None,
        actor: str | None = None,
        heuristic: bool = False,
    ) -> Transaction:
        """Record an operator's resolution (see :mod:`.resolve`); return the transaction
        after it. Refuses a live txid, and a resolution the transaction's state does not
        allow, with the error types and messages of :mod:`.resolve`."""
        check_resolution(outcome, reason, actor)
        with self._lock:
            if txid in self._live:
                raise TransactionStateError(
                    f"transaction {txid} is still driven by its caller; wait for it to finish"
                )
        with self._pass_lock:  # not while a recovery pass acts on it
            run = resolve(
                self.driver,
                self.options.protocol,
                txid,
                outcome,
                reason=reason,
                member=member,
                actor=actor,
                heuristic=heuristic,
            )
            after = run.machine.transaction
            assert after is not None
            with self._lock:
                parked = self._parked.pop(txid, None)
                if parked is not None and not after.ended:  # keep its live objects
                    again = Run(run.machine, parked.members)
                    again.data, again.finish, again.started = parked.data, run.finish, True
                    self._parked[txid] = again
        return after.copy()

    # -- state -----------------------------------------------------------------------------

    def transaction(self, txid: str) -> Transaction | None:
        """A copy of a live run's transaction (None: not live here). Before commit nothing
        is logged: it is then the transaction its members make, active, as ``Opened`` will
        name them. A snapshot: the run may move on while it is read."""
        run = self._live.get(txid)
        if run is None:
            return None
        machine = run.machine
        tx = machine.transaction
        if tx is not None:
            return tx.copy()
        members = [Member(s.name, s.factory, s.params) for s in machine.members]
        mode = machine.mode or Mode.TWO_PHASE
        return Transaction(txid, mode, machine.opened_at, members, None, machine.opened_at)

    def read(self, txid: str) -> Transaction | None:
        """The transaction as the log holds it, folded (after a flush: lazy records too);
        None when the log has none. Raises TransactionDamagedError when it cannot be read
        back or its records do not fold."""
        self.log.flush()
        stored = self.log.read(txid)
        return None if stored is None else transaction_of(stored, self.log)

    def is_live(self, txid: str) -> bool:
        """True while ``txid`` is begun here and its commit or rollback has not returned."""
        return txid in self._live

    def live_txids(self) -> set[str]:
        """Txids of the runs begun here whose commit or rollback has not returned."""
        with self._lock:
            return set(self._live)

    def started(self, txid: str) -> bool:
        """True once commit or rollback was asked of live ``txid``; UnknownTransactionError
        when it is not live here."""
        run = self._live.get(txid)
        if run is None:
            raise UnknownTransactionError(txid)
        return run.started
