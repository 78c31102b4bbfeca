"""Asynchronous phase two: ``commit_transaction(..., wait=False)``.

The caller returns as soon as the commit decision is durable, with a :class:`CommitHandle`.
A completer thread delivers the commits: it takes every transaction queued since its last
round and hands them to :meth:`Driver.deliver_many`, so participants that implement
``commit_many(txids)`` get one call for the whole round. What stays unacknowledged goes to
the background recovery loop, exactly as after a synchronous ``CommitIncompleteError``; a
crash in between is covered by recovery, because the decision is on disk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..drivers.handle import CommitHandle
from ..errors import CommitIncompleteError, CoordinatorClosedError
from ..states import Outcome
from .driver import Driver
from .live import LiveTransaction

__all__ = ["CommitHandle", "Completer"]

log = logging.getLogger("dtc_wal.coordinator")


class Completer:
    def __init__(
        self,
        driver: Driver,
        hand_over: Callable[[LiveTransaction], None],
        forget: Callable[[LiveTransaction], None],
    ) -> None:
        self.driver = driver
        self.hand_over = hand_over
        self.forget = forget
        self._queue: list[tuple[LiveTransaction, CommitHandle]] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._drain = True
        self._thread: threading.Thread | None = None

    def submit(self, tx: LiveTransaction) -> CommitHandle:
        handle = CommitHandle(tx.txid)
        with self._cond:
            if self._stopping:
                raise CoordinatorClosedError("the coordinator is closing")
            self._queue.append((tx, handle))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="dtc-completer", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return handle

    def stop(self, drain: bool) -> None:
        """Stop the thread; with ``drain`` deliver everything queued first."""
        with self._cond:
            self._stopping = True
            self._drain = drain
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                if self._stopping and not self._drain:
                    for _, handle in batch:
                        handle._future.set_exception(
                            CoordinatorClosedError("abandoned before phase two finished")
                        )
                    return
                if not batch:
                    return
            self._complete(batch)

    def _complete(self, batch: list[tuple[LiveTransaction, CommitHandle]]) -> None:
        try:
            pending = self.driver.deliver_many([tx for tx, _ in batch], Outcome.COMMIT)
        except Exception as exc:  # the decision is durable: recovery finishes the rest
            log.exception("completer round failed; recovery will finish these transactions")
            for tx, handle in batch:
                self.hand_over(tx)
                self.forget(tx)
                handle._future.set_exception(CommitIncompleteError(tx.txid, [], [str(exc)]))
            return
        for tx, handle in batch:
            missing = pending.get(tx.txid, [])
            if missing:
                self.hand_over(tx)
            self.forget(tx)
            if missing:
                handle._future.set_exception(
                    CommitIncompleteError(
                        tx.txid, [m.name for m in missing], [m.last_error or "" for m in missing]
                    )
                )
            else:
                handle._future.set_result(None)
