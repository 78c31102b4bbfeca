"""Caller-led group commit, independent of the store (LevelDB's writer queue).

Appenders put an entry on a queue. The first durable appender that finds no writer active
becomes the leader: it takes everything queued, hands it to the store, which writes it in
one store transaction with one sync, then wakes each waiter of that batch through the
waiter's own lock (no ``notify_all`` herd). If more entries queued up meanwhile, it
promotes the first waiting one to leader and returns; so at one caller there are no thread
hand-offs at all, and N concurrent appenders share one sync.

Entries that do not wait -- lazy ones, and ``submit`` with a completion callback -- ride
the next batch; when none comes, a flusher thread writes them (after ``lazy_delay`` for
lazy entries, at once for durable submits). The store says which entries it refused (an
encoding or ordering error refuses only its own entry); a whole-batch failure (the log is
full, the disk failed) goes to every entry of the batch, with nothing of it written.

Crash points: ``wal.before-sync`` just before a batch goes to the store (killed there,
nothing of it is on disk: what an uncommitted store transaction leaves) and
``wal.after-sync`` once the store wrote and synced it, before any waiter is woken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Generic, Protocol, TypeVar

from .. import _crash_hooks as points
from ..errors import CoordinatorClosedError, LogFullError
from .interface import OnDone

__all__ = ["BatchStore", "GroupCommit"]

log = logging.getLogger("dtc_wal.log")

E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)


class BatchStore(Protocol[E_contra]):
    """What group commit needs from a store."""

    def write_batch(self, batch: Sequence[E_contra]) -> Sequence[BaseException | None]:
        """Write ``batch`` in one durable store transaction (synced before returning).

        Return one item per entry: None when it was written, the error when the store
        refused that entry alone (nothing of it written; the others are). Raise to fail
        the whole batch, with nothing of it written. May be called from any thread, never
        from two at once.
        """
        ...


class _Entry(Generic[E]):
    __slots__ = ("done", "error", "item", "on_done", "urgent", "waits", "wake")

    def __init__(self, item: E | None, waits: bool, urgent: bool, on_done: OnDone | None) -> None:
        self.item = item  # None: a marker (flush) that writes nothing
        self.waits = waits  # an append() caller waits for it and gets its error
        self.wake: threading.Lock | None = None  # made only for a caller that follows
        self.urgent = urgent
        self.on_done = on_done
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[E]):
    """Batches entries of type ``E`` into store transactions (see the module docstring).

    ``describe(item)`` names an entry in error logs (its txids); ``owners(item)`` says which
    transactions it writes to (when a batch is retried entry by entry, an entry of a
    transaction whose earlier entry failed fails with that error, unwritten: its records
    would not follow on what the log holds). ``closed_message`` is the text of the
    :class:`CoordinatorClosedError` raised by appends after :meth:`close`.
    """

    def __init__(
        self,
        store: BatchStore[E],
        *,
        lazy_delay: float = 0.002,
        describe: Callable[[E], str] = repr,
        owners: Callable[[E], Collection[str]] = lambda item: (),
        closed_message: str = "the log is closed",
    ) -> None:
        self._store = store
        self.lazy_delay = lazy_delay
        self._describe = describe
        self._owners = owners
        self._closed_message = closed_message
        self._mu = threading.Lock()
        self._queue: list[_Entry[E]] = []
        self._leader = False
        self._closed = False
        self._armed = False  # the flusher was woken and has not looked at the queue yet
        self.batches = 0
        """Batches written (each one store transaction)."""
        self._wanted = threading.Event()  # the flusher has work
        self._hurry = threading.Event()  # ... and it must not wait for lazy_delay
        self._flusher = threading.Thread(target=self._flush_loop, name="dtc-log-flusher")
        self._flusher.daemon = True
        self._flusher.start()

    # -- appends --------------------------------------------------------------------------

    def append(self, item: E, *, durable: bool = True) -> None:
        """Queue ``item``; with ``durable``, return once it is written or raise its error."""
        if not durable:
            self.submit(item, durable=False)
            return
        with self._mu:
            if self._closed:
                raise CoordinatorClosedError(self._closed_message)
            if not self._leader and not self._queue:
                self._leader = True  # alone: write it at once, no entry, no hand-off
                entry = None
            else:
                entry = _Entry(item, True, True, None)
                self._queue.append(entry)
                if self._leader:  # follow: wait on a lock of our own
                    wake = entry.wake = threading.Lock()
                    wake.acquire()
                else:
                    self._leader = True
        if entry is None:
            error = self._write_alone(item)
        else:
            if entry.wake is not None:
                entry.wake.acquire()  # released when written, or when promoted to lead
            if not entry.done:
                self._lead()
            error = entry.error
        if error is not None:
            raise error

    def submit(self, item: E, *, durable: bool, on_done: OnDone | None = None) -> None:
        """Queue ``item`` without waiting; ``on_done(error or None)`` once it is settled."""
        self._enqueue(_Entry(item, False, durable, on_done))

    def _enqueue(self, entry: _Entry[E]) -> None:
        with self._mu:
            if self._closed:
                raise CoordinatorClosedError(self._closed_message)
            self._queue.append(entry)
            if self._leader:
                return  # the leader's next round or its successor takes it
            self._wake_flusher(entry.urgent)

    def _wake_flusher(self, urgent: bool) -> None:
        """Have the flusher write the queue (called under ``_mu``, with no leader).

        One wake-up per flusher round, not per entry: at one caller, a lazy entry per
        transaction would otherwise wake the flusher thread every time.
        """
        if urgent:
            self._hurry.set()
        if not self._armed:
            self._armed = True
            self._wanted.set()

    def flush(self) -> None:
        """Return once everything queued so far is written (refusals are not raised)."""
        with self._mu:
            if not self._queue and not self._leader:
                return
        done = threading.Event()
        self._enqueue(_Entry(None, False, True, lambda _error: done.set()))  # a marker
        done.wait()

    # -- the leader -------------------------------------------------------------------------

    def _write_alone(self, item: E) -> BaseException | None:
        """The leader's own entry when the queue was empty: the common case at low load."""
        if points.ARMED:
            points.hit("wal.before-sync")
        try:
            (error,) = self._store.write_batch([item])
        except BaseException as exc:
            log.error("log write failed (%s): %s", self._describe(item), exc)
            error = exc
        else:
            self.batches += 1
            if points.ARMED:
                points.hit("wal.after-sync")
        self._hand_off()
        return error

    def _lead(self) -> None:
        """Write one batch, then hand leadership to the next waiting appender, if any."""
        with self._mu:
            batch, self._queue = self._queue, []
        self._write(batch)
        for entry in batch:
            entry.done = True
        successor = self._hand_off()
        # Invariant: an entry is woken only after it is done or promoted to lead.
        for entry in batch:
            if entry.wake is not None and entry is not successor:
                entry.wake.release()
        for entry in batch:
            if entry.on_done is not None:
                self._tell(entry)

    def _hand_off(self) -> _Entry[E] | None:
        """Promote the first waiting appender to leader, or stop leading (then the
        flusher takes what does not wait). Returns the promoted entry."""
        with self._mu:
            successor = None
            for entry in self._queue:
                if entry.wake is not None:
                    successor = entry
                    break
            if successor is None:
                self._leader = False
                if self._queue:
                    self._wake_flusher(any(e.urgent for e in self._queue))
        if successor is not None:
            assert successor.wake is not None
            successor.wake.release()
        return successor

    def _write(self, batch: list[_Entry[E]]) -> None:
        pairs = [(e, e.item) for e in batch if e.item is not None]  # markers write nothing
        if not pairs:
            return
        if points.ARMED:
            points.hit("wal.before-sync")
        try:
            refused = self._store.write_batch([item for _, item in pairs])
        except LogFullError as exc:
            if len(pairs) == 1:
                self._failed(batch, pairs, exc)
                return
            # One big entry may not fit where the small ones beside it would: write each
            # alone, so a transaction's records never fail for another's (a lost lazy
            # acknowledgement would leave a finished transaction to recovery). A later
            # entry of a transaction whose entry failed gets that failure, unwritten.
            failed: dict[str, BaseException] = {}
            for entry, item in pairs:
                owners = self._owners(item)
                earlier = next((failed[o] for o in owners if o in failed), None)
                if earlier is not None:
                    entry.error = earlier
                else:
                    self._write([entry])
                if entry.error is not None:
                    failed.update(dict.fromkeys(owners, entry.error))
            return
        except BaseException as exc:
            self._failed(batch, pairs, exc)
            return
        self.batches += 1
        if points.ARMED:
            points.hit("wal.after-sync")
        for (entry, item), error in zip(pairs, refused, strict=True):
            if error is not None:
                entry.error = error
                if not entry.waits and entry.on_done is None:
                    log.error("log append refused (%s): %s", self._describe(item), error)

    def _failed(
        self, batch: list[_Entry[E]], pairs: list[tuple[_Entry[E], E]], exc: BaseException
    ) -> None:
        what = "; ".join(self._describe(item) for _, item in pairs)
        log.error("log write failed, nothing of this batch written (%s): %s", what, exc)
        for entry in batch:
            entry.error = exc

    @staticmethod
    def _tell(entry: _Entry[E]) -> None:
        assert entry.on_done is not None
        try:
            entry.on_done(entry.error)
        except Exception:
            log.exception("a log completion callback raised; ignored")

    # -- background flush and shutdown ------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            self._wanted.wait()
            if self._closed:
                return
            self._wanted.clear()
            # Let lazy entries ride the next caller's batch, unless a durable submit waits.
            if self._hurry.wait(self.lazy_delay):
                self._hurry.clear()
            with self._mu:
                self._armed = False
                if self._leader or not self._queue:
                    continue  # a leader took the queue (or will, and re-arms us if needed)
                self._leader = True
            self._lead()

    def close(self, *, write_pending: bool = True) -> None:
        """Refuse new entries; write what is queued (or, without ``write_pending``, drop
        it: waiters and callbacks get CoordinatorClosedError); stop the flusher. Idempotent.
        """
        with self._mu:
            if self._closed:
                return
            self._closed = True
            dropped = [] if write_pending else self._queue
            if not write_pending:
                self._queue = []
        for entry in dropped:
            entry.error = CoordinatorClosedError(f"{self._closed_message}; dropped unwritten")
            entry.done = True
            if entry.wake is not None:
                entry.wake.release()
            elif entry.on_done is not None:
                self._tell(entry)
        # Invariant: close returns only when no batch is being written.
        while True:
            with self._mu:
                busy = self._leader
                lead = not busy and bool(self._queue)
                if lead:
                    self._leader = True
            if lead:
                self._lead()
            elif busy:
                time.sleep(0.001)
            else:
                break
        self._wanted.set()
        self._hurry.set()
        self._flusher.join(timeout=5)
