"""The write-ahead log: validated appends through one group-commit writer.

Group commit, LevelDB style. Appenders put an entry on a queue. The first appender that
finds no writer active becomes the leader: it takes everything queued, validates it against
the transition table, writes it in one LMDB write transaction with one sync, then wakes each
waiter of that batch through the waiter's own lock (no ``notify_all`` herd). If more entries
queued up meanwhile, it promotes the first waiting one to leader and returns; so at low
concurrency the caller writes its own records with zero thread hand-offs, and at high
concurrency N appenders share one sync.

Entries appended with ``wait=False`` (records that may be lazy, docs/protocol.md) do not
wait: they ride along with the next batch, or a flusher thread writes them after
``lazy_delay`` seconds when no batch comes. Every LMDB commit is synced (unless the log was
opened with ``sync=False``), so a lazy record is as safe as any other once written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence

import lmdb

from .. import _crash_hooks as points
from ..errors import (
    CoordinatorClosedError,
    DtcError,
    InvalidTransitionError,
    TransactionDamagedError,
)
from ..history import ParticipantView, TransactionView, replay
from ..options import one_of
from ..records import LogRecord, encode_record, lsn_key
from ..states import RecordType
from .directory import DirectoryLock, open_log_directory
from .store import MIB, LogStore, put_summary
from .unfinished import Damage, load_unfinished

__all__ = ["WriteAheadLog"]

log = logging.getLogger("dtc_wal.wal")


class _Entry:
    __slots__ = ("done", "error", "lsns", "records", "wake")

    def __init__(self, records: Sequence[LogRecord], wait: bool) -> None:
        self.records = records
        self.wake: threading.Lock | None = None
        if wait:
            self.wake = threading.Lock()
            self.wake.acquire()
        self.done = False
        self.error: BaseException | None = None
        self.lsns: list[int] = []


def _copy_view(view: TransactionView) -> TransactionView:
    return view.copy()


class WriteAheadLog:
    """An exclusively opened log that appends validated records durably.

    >>> import tempfile, time
    >>> from dtc_wal.wal import LogRecord, WriteAheadLog
    >>> from dtc_wal.states import RecordType
    >>> with WriteAheadLog(tempfile.mkdtemp()) as wal:
    ...     wal.append([LogRecord(RecordType.BEGUN, "tx-1", time.time())])
    [1]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int = 64 * MIB,
        max_map_size: int = 8 * 1024 * MIB,
        sync: bool = True,
        lazy_delay: float = 0.002,
        writer: str = "caller",
    ) -> None:
        one_of("writer", writer, ("caller", "thread"))  # appenders lead in turn, or a thread
        # "thread": a dedicated writer thread writes every batch -- kept to measure the
        # alternative (benchmarks); "caller" is faster (docs/performance.md).
        self._dedicated = writer == "thread"
        self._lock_file: DirectoryLock | None = None
        lock = open_log_directory(path)  # LogError / LogLockedError say what is wrong
        self._lock_file = lock
        store: LogStore | None = None
        try:
            store = LogStore(path, map_size=map_size, max_map_size=max_map_size, sync=sync)
            self.store = store
            self._views: dict[str, TransactionView] = {}
            self._damaged: dict[str, Damage] = {}  # set once here, never changed
            self._load_unfinished()
        except BaseException:
            # LMDB refuses a second open of one environment in a process: close it, so a
            # retry (after repair, or by recovery) can open the log again.
            if store is not None:
                store.close()
            lock.release()
            raise
        self.path = self.store.path
        self.lazy_delay = lazy_delay
        self._mu = threading.Lock()
        self._queue: list[_Entry] = []
        # txids whose COMPLETED record is queued, not yet written: finished for the caller
        # (every participant acknowledged), still listed in ``_views`` until it lands.
        self._completing: dict[str, int] = {}
        self._leader = False
        self._closed = False
        self.batches = 0
        self.records_written = 0
        self._flush_wanted = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="dtc-wal-flusher")
        self._flusher.daemon = True
        self._flusher.start()

    # -- start-up -----------------------------------------------------------------------

    def _load_unfinished(self) -> None:
        """Rebuild every unfinished transaction from its records (never the history).

        A transaction whose records or index entry cannot be read back is kept aside as
        damaged (:meth:`damaged`), logged at ERROR once here; the others load as usual.
        """
        views, damaged = load_unfinished(self.store)
        self._views = {v.txid: v for v in views}
        for damage in damaged:
            self._damaged[damage.name] = damage
            log.error(
                "txid=%s damaged in the log at %s, left unfinished and in doubt (recovery "
                "will not touch it): %s",
                damage.name,
                damage.where,
                damage.reason,
                extra={"txid": damage.name, "lsn": damage.lsn},
            )

    # -- queries --------------------------------------------------------------------------

    def unfinished(self) -> list[TransactionView]:
        """Copies of every transaction the log does not show completed, oldest first."""
        with self._mu:
            views = [_copy_view(v) for v in self._views.values()]
        return sorted(views, key=lambda v: (v.created_at, v.lsns[:1]))

    def unfinished_count(self) -> int:
        """How many transactions are not finished, damaged ones included (no copies made).

        One whose COMPLETED record is queued (lazy, docs/protocol.md) counts as finished:
        every participant acknowledged, and losing that record in a crash only repeats an
        idempotent commit or rollback.
        """
        return self.unfinished_counts(())[0]

    def unfinished_counts(self, among: Iterable[str]) -> tuple[int, int]:
        """``(unfinished_count(), how many of among are unfinished)``, read at one instant."""
        with self._mu:
            some = sum(1 for t in among if self._unfinished(t))
            completing = sum(1 for t in self._completing if t in self._views)
            return len(self._views) - completing + len(self._damaged), some

    def _unfinished(self, txid: str) -> bool:
        return txid in self._damaged or (txid in self._views and txid not in self._completing)

    def damaged(self) -> list[Damage]:
        """The unfinished transactions found damaged at open (never driven), in index order."""
        return list(self._damaged.values())

    def _refuse_damaged(self, txid: str) -> None:
        damage = self._damaged.get(txid)
        if damage is not None:
            raise TransactionDamagedError(txid, damage.lsn, damage.reason, str(self.store.path))

    def view(self, txid: str) -> TransactionView | None:
        """The log's view of one transaction (a copy), finished or not; None when unknown.

        Raises :class:`TransactionDamagedError` for a transaction found damaged at open."""
        if not isinstance(txid, str):
            return None  # never a transaction id; the txid index is keyed by str
        self._refuse_damaged(txid)
        with self._mu:
            live = self._views.get(txid)
            if live is not None:
                return _copy_view(live)
        records = self.store.records_of(txid)
        return replay(records) if records else None

    def participant(self, txid: str, name: str) -> ParticipantView | None:
        view = self.view(txid)
        return None if view is None else view.participants.get(name)

    @property
    def syncs(self) -> int:
        return self.store.syncs

    # -- appends --------------------------------------------------------------------------

    def append(self, records: Sequence[LogRecord], *, wait: bool = True) -> list[int] | None:
        """Append ``records`` in order; with ``wait`` return their LSNs once durable.

        Raises :class:`InvalidTransitionError` (nothing of this call appended) when a record
        breaks the state order, :class:`LogFullError` at the map maximum.
        """
        entry = _Entry(records, wait)
        with self._mu:
            if self._closed:
                raise CoordinatorClosedError(f"the log at {self.path} is closed")
            self._queue.append(entry)
            for record in records:
                if record.type is RecordType.COMPLETED:
                    self._completing[record.txid] = self._completing.get(record.txid, 0) + 1
            if self._dedicated:
                self._flush_wanted.set()
                if not wait:
                    return None
                follower = True
            elif self._leader:
                if not wait:
                    return None
                follower = True
            else:
                if not wait:
                    self._flush_wanted.set()
                    return None
                self._leader = True
                follower = False
        if follower:
            assert entry.wake is not None
            entry.wake.acquire()
            if not entry.done:
                self._lead()
        else:
            self._lead()
        if entry.error is not None:
            raise entry.error
        return entry.lsns

    def flush(self) -> None:
        """Wait until everything appended so far, lazy records included, is durable."""
        with self._mu:
            if not self._queue and not self._leader:
                return
        self.append([])

    def _lead(self) -> None:
        """Write one batch, then hand leadership to the next waiting appender, if any."""
        with self._mu:
            batch, self._queue = self._queue, []
        self._write(batch)
        for entry in batch:
            entry.done = True
        with self._mu:
            successor = (
                None
                if self._dedicated
                else next((e for e in self._queue if e.wake is not None), None)
            )
            if successor is None:
                self._leader = False
                if self._queue:  # only lazy entries are left: the flusher takes them
                    self._flush_wanted.set()
        # Invariant: an entry is woken only after it is done or promoted to lead.
        for entry in batch:
            if entry.wake is not None:
                entry.wake.release()
        if successor is not None and successor.wake is not None:
            successor.wake.release()

    def _write(self, batch: list[_Entry]) -> None:
        staged: dict[str, TransactionView] = {}

        def body(txn: lmdb.Transaction) -> int:
            staged.clear()
            next_lsn = self.store.last_lsn
            cursor = txn.cursor(db=self.store.records)
            for entry in batch:
                entry.error = None
                local: dict[str, TransactionView] = {}
                encoded: list[tuple[int, bytes]] = []
                lsn = next_lsn
                try:
                    for record in entry.records:
                        lsn += 1
                        # Invariant: views in `local` are private copies, so a refused
                        # entry leaves `staged` and the live views untouched.
                        view = local.get(record.txid)
                        if view is None:
                            base = staged.get(record.txid)
                            if base is None:
                                view = self._start_view(txn, record, lsn)
                            else:
                                view = _copy_view(base)
                                view.apply(record, lsn)
                        else:
                            view.apply(record, lsn)
                        local[record.txid] = view
                        encoded.append((lsn, encode_record(record)))
                except DtcError as exc:
                    entry.error = exc
                    continue
                for key_lsn, value in encoded:
                    cursor.put(lsn_key(key_lsn), value, append=True)
                staged.update(local)
                entry.lsns = [n for n, _ in encoded]
                next_lsn = lsn
            for txid, view in staged.items():
                # Invariant: self._views holds exactly the txids listed in `unfinished`.
                put_summary(txn, self.store, txid, view.summary(), txid in self._views)
            if next_lsn != self.store.last_lsn:
                txn.put(b"last-lsn", lsn_key(next_lsn), db=self.store.meta)
            return next_lsn

        try:
            last = self.store.write(body)
        except BaseException as exc:
            txids = sorted({r.txid for e in batch for r in e.records})
            log.error("log write failed for transactions %s: %s", ", ".join(txids), exc)
            for entry in batch:
                entry.error = entry.error or exc
            with self._mu:
                self._settle(batch)
            return
        if points.ARMED:
            points.hit("wal.after-sync")
        self.store.last_lsn = last
        self.batches += 1
        with self._mu:
            for txid, view in staged.items():
                if view.state.finished:
                    self._views.pop(txid, None)
                else:
                    self._views[txid] = view
            self._settle(batch)
        for entry in batch:
            if entry.error is None:
                self.records_written += len(entry.records)
            elif entry.wake is None:
                log.error("lazy log records refused: %s", entry.error)

    def _settle(self, batch: Sequence[_Entry]) -> None:
        """Forget the queued COMPLETED records of ``batch``: written, refused or dropped.
        Called with ``_mu`` held, in the same critical section that updates ``_views``."""
        for entry in batch:
            for record in entry.records:
                if record.type is RecordType.COMPLETED:
                    left = self._completing.pop(record.txid, 0) - 1
                    if left > 0:
                        self._completing[record.txid] = left

    def _start_view(self, txn: lmdb.Transaction, record: LogRecord, lsn: int) -> TransactionView:
        live = self._views.get(record.txid)
        if live is not None:
            view = _copy_view(live)
            view.apply(record, lsn)
            return view
        self._refuse_damaged(record.txid)
        if record.type is not RecordType.BEGUN:
            known = self.store.summary(record.txid, txn)
            why = "it is already finished" if known else "it was never begun"
            raise InvalidTransitionError(
                f"transaction {record.txid}: {record.type.name} refused: {why}"
            )
        if self.store.summary(record.txid, txn) is not None:
            raise InvalidTransitionError(f"transaction {record.txid} was already begun")
        return TransactionView.begin(record, lsn)

    # -- background flush and shutdown ------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            self._flush_wanted.wait()
            if self._closed:
                return
            self._flush_wanted.clear()
            if not self._dedicated:
                time.sleep(self.lazy_delay)  # let lazy records ride the next caller's batch
            with self._mu:
                if self._leader or not self._queue:
                    continue
                self._leader = True
            self._lead()

    def close(self) -> None:
        """Refuse new appends, write everything queued, then release the log. Idempotent."""
        self._shutdown(write_pending=True)

    def abandon(self) -> None:
        """Drop the log without writing what is queued: the in-process stand-in for kill -9.

        Only for tests and the fault-injection harness. Queued records are lost, as they
        would be in a crash (appenders waiting for them get CoordinatorClosedError); a batch
        already being written finishes first; the directory lock is released.
        """
        self._shutdown(write_pending=False)

    def _shutdown(self, write_pending: bool) -> None:
        with self._mu:
            if self._closed:
                return
            self._closed = True  # from here on append() refuses
            dropped = [] if write_pending else self._queue
            if not write_pending:
                self._queue = []
                self._settle(dropped)
        for entry in dropped:
            entry.error = CoordinatorClosedError(f"the log at {self.path} was abandoned")
            entry.done = True
            if entry.wake is not None:
                entry.wake.release()
        # Invariant: the environment is closed only when no batch is being written.
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
        self._flush_wanted.set()
        self._flusher.join(timeout=5)
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.release()

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
