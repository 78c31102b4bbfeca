"""The format-1 coordinator's background recovery: the loop of :mod:`.recovery_loop`
(reap zombies, re-drive unfinished transactions with backoff) with passes on the format-1
recovery engine, which also settles orphans of registered PreparedResources."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..recovery.engine import RecoveryEngine
from ..recovery.report import RecoveryReport
from .live import LiveTransaction
from .recovery_loop import RecoveryLoop

if TYPE_CHECKING:
    from .core import TransactionCoordinator

__all__ = ["BackgroundRecovery"]


class _SkipOrLive:
    """The txids a pass leaves alone: ``skip``, plus whatever is live *when asked*.

    A transaction begun during the pass is missing from the live set read at its start;
    when all its participants list what they hold prepared, its opening records are only
    queued, so it may prepare -- unknown to the log -- before the pass lists the
    PreparedResources. Orphan resolution asks here per prepared txid, after listing: a
    caller's transaction is live then (or already decided in the log), never an orphan.
    """

    __slots__ = ("live", "skip")

    def __init__(self, skip: set[str], live: Mapping[str, object]) -> None:
        self.skip = skip
        self.live = live

    def __contains__(self, txid: object) -> bool:
        return txid in self.skip or txid in self.live


class BackgroundRecovery:
    """The format-1 coordinator's :class:`~.recovery_loop.RecoveryLoop`: its passes run on
    the format-1 recovery engine and keep the callers' unfinished transactions handed over
    (with their live participant objects) until a pass finishes them."""

    def __init__(
        self,
        coordinator: TransactionCoordinator,
        interval: float | None,
        backoff_max: float,
        workers: int = 1,
    ) -> None:
        self.coordinator = coordinator
        self._handover: dict[str, LiveTransaction] = {}
        self._engine = RecoveryEngine(
            coordinator.driver, coordinator.registry, handover=self._handover.get, workers=workers
        )
        self._loop = RecoveryLoop(
            self._pass, coordinator.reap_zombies, coordinator.clock, interval, backoff_max
        )
        self._state_lock = threading.Lock()  # _handover; never held during calls
        self.start = self._loop.start
        self.stop = self._loop.stop
        self.backing_off = self._loop.backing_off
        self.exclusive = self._loop.exclusive

    def hand_over(self, tx: LiveTransaction) -> None:
        """Keep a caller's unfinished transaction (with its live participant objects).

        Does not wait for a running pass: the caller gets its error at once."""
        with self._state_lock:
            self._handover[tx.txid] = tx

    def forget(self, txid: str) -> None:
        with self._state_lock:
            self._handover.pop(txid, None)
        self._loop.forget(txid)

    def recover_now(
        self, only_due: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> RecoveryReport:
        """One pass over every unfinished transaction no caller is driving."""
        return self._loop.recover_now(only_due, progress)

    def _pass(self, skip: set[str], progress: Callable[[int, int], None] | None) -> RecoveryReport:
        coord = self.coordinator
        # Invariant: a transaction is taken only if it was in the log *before* the live set
        # was read and is not in it. A caller's transaction joins the live set before its
        # first record, so it was live then -- or already left it, and a txid never becomes
        # live again; the second flush then makes every record its caller appended visible
        # before the engine reads the view again.
        coord.wal.flush()
        candidates = {v.txid for v in coord.wal.unfinished()}
        skip |= coord.live_txids
        coord.wal.flush()
        live_now = _SkipOrLive(skip, coord._live)
        report = self._engine.run(skip=live_now, only=candidates, progress=progress)
        with self._state_lock:
            for txid in report.finished:
                self._handover.pop(txid, None)
        coord._counters.add("recovery_passes")
        coord._counters.add("recovered", len(report.finished))
        return report
