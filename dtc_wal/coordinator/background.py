"""The coordinator's background loop: retry unfinished transactions, reap zombies.

Every ``interval`` seconds it (1) rolls back open transactions older than the zombie limit,
(2) re-drives unfinished transactions whose retry is due -- each transaction backs off
exponentially up to ``backoff_max`` while it stays in doubt, so an unreachable participant
costs a few log records, not one per interval -- and (3) settles orphans of registered
PreparedResources. A participant that comes back gets its outcome without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..errors import DtcError
from ..recovery.engine import RecoveryEngine
from ..recovery.report import RecoveryReport
from .live import LiveTransaction

if TYPE_CHECKING:
    from .core import TransactionCoordinator

__all__ = ["BackgroundRecovery"]

log = logging.getLogger("dtc_wal.recovery")


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
    def __init__(
        self,
        coordinator: TransactionCoordinator,
        interval: float | None,
        backoff_max: float,
        workers: int = 1,
    ) -> None:
        self.coordinator = coordinator
        self.interval = interval
        self.backoff_max = backoff_max
        self._handover: dict[str, LiveTransaction] = {}
        self._due: dict[str, tuple[float, int]] = {}  # txid -> (next try, failures)
        self._engine = RecoveryEngine(
            coordinator.driver, coordinator.registry, handover=self._handover.get, workers=workers
        )
        self._pass_lock = threading.Lock()  # one pass (or operator resolution) at a time
        self._state_lock = threading.Lock()  # _handover and _due; never held during calls
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval is None:
            return
        self._thread = threading.Thread(target=self._loop, name="dtc-recovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def hand_over(self, tx: LiveTransaction) -> None:
        """Keep a caller's unfinished transaction (with its live participant objects).

        Does not wait for a running pass: the caller gets its error at once."""
        with self._state_lock:
            self._handover[tx.txid] = tx

    def backing_off(self) -> list[str]:
        """The transactions a pass tried and did not finish (retried with backoff)."""
        with self._state_lock:
            return list(self._due)

    def forget(self, txid: str) -> None:
        with self._state_lock:
            self._handover.pop(txid, None)
            self._due.pop(txid, None)

    def exclusive(self) -> threading.Lock:
        """The pass lock: hold it to change the log's view of unfinished transactions
        (operator resolution) without a recovery pass acting on them at the same time."""
        return self._pass_lock

    def recover_now(
        self, only_due: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> RecoveryReport:
        """One pass over every unfinished transaction no caller is driving."""
        with self._pass_lock:
            coord = self.coordinator
            # Invariant: a transaction is taken only if it was in the log *before* the
            # live set was read and is not in it. A caller's transaction joins the live set
            # before its first record, so it was live then -- or already left it, and a
            # txid never becomes live again; the second flush then makes every record its
            # caller appended visible before the engine reads the view again.
            coord.wal.flush()
            candidates = {v.txid for v in coord.wal.unfinished()}
            skip = coord.live_txids
            coord.wal.flush()
            now = coord.clock.monotonic()
            if only_due:
                with self._state_lock:
                    skip |= {t for t, (due, _) in self._due.items() if due > now}
            live_now = _SkipOrLive(skip, coord._live)
            report = self._engine.run(skip=live_now, only=candidates, progress=progress)
            self._reschedule(report, now)
            coord._counters.add("recovery_passes")
            coord._counters.add("recovered", len(report.finished))
            return report

    def _reschedule(self, report: RecoveryReport, now: float) -> None:
        """Forget what finished; back off exponentially on what stays in doubt."""
        finished = set(report.finished)
        with self._state_lock:
            for action in report.transactions:
                if action.txid in finished:
                    self._handover.pop(action.txid, None)
                    self._due.pop(action.txid, None)
                else:
                    failures = self._due.get(action.txid, (0.0, 0))[1] + 1
                    base = self.interval or 1.0
                    delay = min(self.backoff_max, base * 2 ** (failures - 1))
                    self._due[action.txid] = (now + delay, failures)

    def _loop(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            try:
                self.coordinator.reap_zombies()
                report = self.recover_now(only_due=True)
                if report.in_doubt:
                    log.warning("background recovery: %s", report.summary())
            except DtcError as exc:
                log.error("background recovery pass failed: %s", exc)
            except Exception:
                log.exception("background recovery pass crashed; retrying next interval")
