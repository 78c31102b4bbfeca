"""Reading transactions, recovery on demand, the zombie reaper, operator resolution."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import InvalidOptionError, TransactionStateError, UnknownTransactionError
from ..history import TransactionView
from ..recovery.report import InDoubt, RecoveryReport
from ..recovery.resolve import resolve_transaction
from ..recovery.standalone import in_doubt_of
from ..states import Outcome, TxState
from .base import CoordinatorBase
from .driver import Driver
from .live import Phase
from .stats import CoordinatorStats

__all__ = ["Operations"]

log = logging.getLogger("dtc_wal.coordinator")


class Operations(CoordinatorBase):
    def transaction(self, txid: str) -> TransactionView:
        """The transaction as the log sees it (a copy), including records still queued."""
        with self._lock:
            tx = self._live.get(txid)
        if tx is not None and not tx.logged:
            return tx.view()
        self.wal.flush()
        view = self.wal.view(txid)
        if view is None:
            raise UnknownTransactionError(txid)
        return view

    def state(self, txid: str) -> TxState:
        """Shortcut for ``transaction(txid).state``."""
        return self.transaction(txid).state

    def unfinished(self) -> list[TransactionView]:
        """Every transaction the log does not show completed, oldest first (except those
        found damaged at open: :meth:`in_doubt` reports them)."""
        self.wal.flush()
        return self.wal.unfinished()

    def in_doubt(self) -> list[InDoubt]:
        """Participants of unfinished transactions that still need their outcome, and one
        entry (``damaged`` True, with the reason) per transaction found damaged at open."""
        with self._lock:
            live = set(self._live)
        views = (v for v in self.unfinished() if v.txid not in live)
        return in_doubt_of(views, self.wal.damaged())

    def stats(self) -> CoordinatorStats:
        """Counters since open and gauges now, for monitoring (see
        :class:`~dtc_wal.coordinator.stats.CoordinatorStats`)."""
        with self._lock:
            live = len(self._live)
        wal = self.wal
        # One reading of the log's view, so in_doubt <= unfinished always holds.
        unfinished, in_doubt = wal.unfinished_counts(self._background.backing_off())
        return CoordinatorStats(
            **self._counters.snapshot(),
            live=live,
            unfinished=unfinished,
            in_doubt=in_doubt,
            log_records=wal.records_written,
            log_batches=wal.batches,
            log_syncs=wal.syncs,
            log_bytes_used=wal.store.used_bytes(),
            log_map_size=wal.store.map_size,
            log_max_map_size=wal.store.max_map_size,
        )

    # -- recovery and operators -------------------------------------------------------------

    def recover_now(self, progress: Callable[[int, int], None] | None = None) -> RecoveryReport:
        """Run a recovery pass now over every unfinished transaction no caller owns;
        ``progress(done, total)`` is called after each transaction."""
        if progress is not None and not callable(progress):
            raise InvalidOptionError(f"progress must be a callable(done, total), not {progress!r}")
        return self._background.recover_now(progress=progress)

    def reap_zombies(self) -> list[str]:
        """Roll back open transactions older than ``zombie_timeout``; return their ids."""
        if self.zombie_timeout is None:
            return []
        now = self.clock.monotonic()
        with self._lock:
            old = [
                tx
                for tx in self._live.values()
                if tx.phase is Phase.OPEN and now - tx.started_mono > self.zombie_timeout
            ]
        reaped = []
        for tx in old:
            reason = (
                f"zombie reaper: open for {now - tx.started_mono:.0f}s, more than "
                f"zombie_timeout={self.zombie_timeout}s, without commit or rollback"
            )
            try:
                self.rollback_transaction(tx.txid, reason=reason)
            except (TransactionStateError, UnknownTransactionError):
                continue  # its caller got there first
            log.warning("txid=%s %s", tx.txid, reason, extra={"txid": tx.txid})
            self._counters.add("zombies_reaped")
            reaped.append(tx.txid)
        return reaped

    def resolve(
        self,
        txid: str,
        outcome: Outcome | str,
        *,
        reason: str,
        participant: str | None = None,
        actor: str | None = None,
        heuristic: bool = False,
    ) -> TransactionView:
        """Operator decision for an in-doubt transaction, recorded in the log
        (see :func:`dtc_wal.recovery.resolve_transaction`)."""
        resolution = _resolution(outcome)  # a bad outcome is refused before anything else
        with self._lock:
            if txid in self._live:
                raise TransactionStateError(
                    f"transaction {txid} is still driven by its caller; wait for it to finish"
                )
        with self._background.exclusive():  # not while a recovery pass acts on it
            view = resolve_transaction(
                self.wal,
                txid,
                resolution,
                reason=reason,
                participant=participant,
                actor=actor,
                heuristic=heuristic,
                clock=self.clock,
            )
        if view.state.finished:
            self._background.forget(txid)
        return view

    @property
    def live_txids(self) -> set[str]:
        with self._lock:
            return set(self._live)

    @property
    def driver(self) -> Driver:
        return self._driver


def _resolution(outcome: Outcome | str) -> Outcome:
    """``"commit"``, or ``"abort"``/``"rollback"`` (also as :class:`Outcome`)."""
    value = outcome.value if isinstance(outcome, Outcome) else str(outcome).lower()
    if value == "commit":
        return Outcome.COMMIT
    if value in ("abort", "rollback"):
        return Outcome.ROLLBACK
    raise InvalidOptionError(f"an operator resolves to 'commit' or 'abort', not {outcome!r}")
