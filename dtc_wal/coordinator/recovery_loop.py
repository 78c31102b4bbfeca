"""The coordinator's background loop on the engine: reap zombies, re-drive unfinished
transactions with backoff.

Every ``interval`` seconds it (1) rolls back open transactions older than the zombie limit
and (2) runs a recovery pass over the unfinished transactions whose retry is due: each one
backs off exponentially up to ``backoff_max`` while it stays in doubt, so an unreachable
participant costs a few log records, not one per interval. A participant that comes back
gets its outcome without a restart.

It sees the coordinator through two callables -- ``recover(skip, progress)`` (one pass on
the engine, which itself leaves live transactions alone) and ``reap()`` -- not the
coordinator itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..clock import Clock
from ..errors import DtcError
from ..recovery.report import RecoveryReport

__all__ = ["Progress", "RecoveryLoop"]

log = logging.getLogger("dtc_wal.recovery")

Progress = Callable[[int, int], None]


class RecoveryLoop:
    def __init__(
        self,
        recover: Callable[[set[str], Progress | None], RecoveryReport],
        reap: Callable[[], object],
        clock: Clock,
        interval: float | None,
        backoff_max: float,
    ) -> None:
        self._recover = recover
        self._reap = reap
        self.clock = clock
        self.interval = interval
        self.backoff_max = backoff_max
        self._due: dict[str, tuple[float, int]] = {}  # txid -> (next try, failures)
        self._pass_lock = threading.Lock()  # one pass (or operator resolution) at a time
        self._state_lock = threading.Lock()  # _due; never held during a pass
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

    def backing_off(self) -> list[str]:
        """The transactions a pass tried and did not finish (retried with backoff)."""
        with self._state_lock:
            return list(self._due)

    def forget(self, txid: str) -> None:
        with self._state_lock:
            self._due.pop(txid, None)

    def exclusive(self) -> threading.Lock:
        """Hold it to change a transaction in the log (operator resolution) without a
        recovery pass acting on it at the same time."""
        return self._pass_lock

    def recover_now(
        self, only_due: bool = False, progress: Progress | None = None
    ) -> RecoveryReport:
        """One pass over every unfinished transaction no caller is driving (``only_due``:
        those whose backoff has run out)."""
        with self._pass_lock:
            now = self.clock.monotonic()
            skip: set[str] = set()
            if only_due:
                with self._state_lock:
                    skip = {t for t, (due, _) in self._due.items() if due > now}
            report = self._recover(skip, progress)
            self._reschedule(report, now)
            return report

    def _reschedule(self, report: RecoveryReport, now: float) -> None:
        """Forget what finished; back off exponentially on what stays in doubt."""
        finished = set(report.finished)
        with self._state_lock:
            for action in report.transactions:
                if action.txid in finished:
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
                self._reap()
                report = self.recover_now(only_due=True)
                if report.in_doubt:
                    log.warning("background recovery: %s", report.summary())
            except DtcError as exc:
                log.error("background recovery pass failed: %s", exc)
            except Exception:
                log.exception("background recovery pass crashed; retrying next interval")
