"""``LmdbLog``: the :class:`~dtc_wal.log.TransactionLog` on LMDB, in log format 2."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import lmdb

from ...errors import (
    CoordinatorClosedError,
    InvalidOptionError,
    InvalidTransactionIdError,
    LogError,
)
from ...protocol.records import Record
from ..group_commit import GroupCommit
from ..interface import Compacted, LogInfo, OnDone, StoredTransaction
from . import compact as _compact
from .codec import FORMAT, EncodedRecord, encode, txid_key
from .directory import DirectoryLock, open_log_directory
from .reader import Stray, iter_transactions, iter_unfinished, read_range, stray_records
from .store import MIB, LmdbStore
from .writer import Appender

__all__ = ["LmdbLog"]


def _check_options(
    path: object, map_size: object, max_map_size: object, lazy_delay: object
) -> None:
    if isinstance(path, str | os.PathLike) and not isinstance(path, bool) and not str(path):
        raise InvalidOptionError("the log path is empty: give a directory, e.g. var/dtc-log")
    if isinstance(path, bool) or not isinstance(path, str | os.PathLike):
        raise InvalidOptionError(
            f"a log path is a directory's str or os.PathLike, not {type(path).__name__} {path!r}"
        )
    for name, value in (("map_size", map_size), ("max_map_size", max_map_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidOptionError(f"{name} is a positive number of bytes, not {value!r}")
    if isinstance(lazy_delay, bool) or not isinstance(lazy_delay, int | float) or lazy_delay < 0:
        raise InvalidOptionError(f"lazy_delay is a number of seconds >= 0, not {lazy_delay!r}")


def _describe(entry: Sequence[EncodedRecord]) -> str:
    return "transaction " + ", ".join(sorted(_owners(entry)))


def _owners(entry: Sequence[EncodedRecord]) -> set[str]:
    return {r[0] for r in entry}


class LmdbLog:
    """A format-2 log in an LMDB directory (docs/log-format.md).

    One process appends: opening takes ``<path>/coordinator.lock`` (LogLockedError while
    another process holds it). ``readonly=True`` opens for reading only, without the lock,
    beside a live writer in another process. Every commit is synced unless ``sync=False``.
    The map starts at ``map_size`` and doubles when full up to ``max_map_size``; then
    appends raise LogFullError, with nothing already written lost.

    >>> import tempfile, time
    >>> from dtc_wal.protocol.records import Ended, MemberSpec, Mode, Opened
    >>> with LmdbLog(tempfile.mkdtemp()) as log:
    ...     log.append([Opened("tx-1", time.time(), Mode.TWO_PHASE, (MemberSpec("a"),))])
    ...     [t.txid for t in log.unfinished()]
    ...     log.append([Ended("tx-1", time.time())], durable=False)
    ...     log.flush()
    ...     log.read("tx-1").finished
    ['tx-1']
    True
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        sync: bool = True,
        map_size: int = 64 * MIB,
        max_map_size: int = 8 * 1024 * MIB,
        lazy_delay: float = 0.002,
    ) -> None:
        _check_options(path, map_size, max_map_size, lazy_delay)
        self.path = Path(path)
        self._lock: DirectoryLock | None = None
        self._closed = False
        self._pinned: tuple[int, lmdb.Transaction] | None = None
        """The snapshot's read transaction and the thread that reads it (:meth:`snapshot`)."""
        if not readonly:
            self._lock = open_log_directory(path)  # LogError/LogLockedError say what is wrong
        try:
            self._store = LmdbStore(
                self.path,
                readonly=readonly,
                map_size=map_size,
                max_map_size=max_map_size,
                sync=sync,
            )
            self._appender: Appender | None = None
            self._commit: GroupCommit[Sequence[EncodedRecord]] | None = None
            if not readonly:
                try:
                    self._appender = Appender(self._store)
                    self._commit = GroupCommit(
                        self._appender,
                        lazy_delay=lazy_delay,
                        describe=_describe,
                        owners=_owners,
                        closed_message=f"the log at {self.path} is closed",
                    )
                except BaseException:
                    self._store.close()
                    raise
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    # -- appends ----------------------------------------------------------------------------

    def _open(self) -> LmdbStore:
        if self._closed:
            raise CoordinatorClosedError(f"the log at {self.path} is closed")
        return self._store

    def _writer(self) -> GroupCommit[Sequence[EncodedRecord]]:
        self._open()
        if self._commit is None:
            raise LogError(
                f"the log at {self.path} was opened read-only; open it without readonly "
                "(one process at a time) to append or compact"
            )
        return self._commit

    def append(self, records: Sequence[Record], *, durable: bool = True) -> None:
        # The hot path: GroupCommit itself refuses appends after close.
        commit = self._commit if self._commit is not None else self._writer()
        if records:
            commit.append(encode(records), durable=durable)

    def submit(
        self, records: Sequence[Record], *, durable: bool, on_done: OnDone | None = None
    ) -> None:
        commit = self._commit if self._commit is not None else self._writer()
        if records:
            commit.submit(encode(records), durable=durable, on_done=on_done)
        elif on_done is not None:
            on_done(None)

    def flush(self) -> None:
        if self._commit is not None:
            self._commit.flush()

    @property
    def syncs(self) -> int:
        """Durable commits since open (the counter tests and benchmarks read)."""
        return self._store.syncs

    @property
    def lazy_delay(self) -> float:
        """Seconds a lazy append waits for a batch to ride before the flusher writes it."""
        return self._writer().lazy_delay

    @lazy_delay.setter
    def lazy_delay(self, seconds: float) -> None:
        _check_options(self.path, MIB, MIB, seconds)
        self._writer().lazy_delay = seconds

    # -- reads ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[LmdbLog]:
        """Read one consistent state of the log until the block ends.

        Inside it, :meth:`read`, :meth:`unfinished`, :meth:`transactions` and the counts
        of :meth:`info` all read one LMDB read transaction: a writer in another process
        committing meanwhile is not seen at all, so the tables always agree (a transaction
        is in ``unfinished`` exactly when its records have not ended). Outside it, each
        call (and each chunk of an iteration) reads the newest state. The snapshot pins
        the pages it sees, so the writer's file may grow while it lasts: for a command's
        read, not for a long-lived reader. Only on a read-only log (a log that appends
        would not see its own writes). It is the calling thread's: other threads, and
        iterators begun outside it, read the newest state as usual. Not reentrant.
        """
        store = self._open()
        if not store.readonly:
            raise LogError(
                f"the log at {self.path} is open for writing: a snapshot is for read-only "
                "logs (LmdbLog(path, readonly=True)); the writer holds the lock, so its "
                "reads are consistent anyway"
            )
        if self._pinned is not None:
            raise LogError(f"the log at {self.path} is already reading a snapshot")
        with store.reader() as txn:
            self._pinned = (threading.get_ident(), txn)
            try:
                yield self
            finally:
                self._pinned = None

    def _snapshot_txn(self) -> lmdb.Transaction | None:
        pinned = self._pinned
        if pinned is not None and pinned[0] == threading.get_ident():
            return pinned[1]
        return None

    @contextlib.contextmanager
    def _reader(self, store: LmdbStore) -> Iterator[lmdb.Transaction]:
        pinned = self._snapshot_txn()
        if pinned is not None:
            yield pinned
        else:
            with store.reader() as txn:
                yield txn

    def read(self, txid: str) -> StoredTransaction | None:
        try:
            key = txid_key(txid)
        except InvalidTransactionIdError:
            return None  # an id this log could never have stored
        store = self._open()
        with self._reader(store) as txn:
            tn_key = txn.get(key, db=store.txns)
            if tn_key is None:
                return None
            return read_range(txn, store, bytes(tn_key), txid)

    def unfinished(self) -> Iterator[StoredTransaction]:
        return iter_unfinished(self._open(), self._snapshot_txn())

    def transactions(self, prefix: str = "") -> Iterator[StoredTransaction]:
        if not isinstance(prefix, str):
            raise InvalidOptionError(f"prefix is a str, not {type(prefix).__name__}")
        return iter_transactions(
            self._open(), prefix.encode("utf-8", "surrogatepass"), self._snapshot_txn()
        )

    def stray_records(self) -> list[Stray]:
        """Ranges of stored records that no index entry names (damage :meth:`transactions`
        and :meth:`unfinished` cannot see: ``dtc verify`` reports them). Reads every record
        key once, in one read transaction (the snapshot's, inside :meth:`snapshot`)."""
        store = self._open()
        with self._reader(store) as txn:
            return list(stray_records(txn, store))

    @property
    def lockless(self) -> bool:
        """True when this reader opened without LMDB's lock file (a read-only directory it
        may not write): it cannot rule out a writer, so what it reads may be torn."""
        return self._store.lockless

    @property
    def stale_readers_cleared(self) -> int:
        """Reader slots of dead processes LMDB freed when this log was opened."""
        return self._store.stale_readers_cleared

    def info(self) -> LogInfo:
        store = self._open()
        with self._reader(store) as txn:
            records = txn.stat(store.records)["entries"]
            transactions = txn.stat(store.txns)["entries"]
            unfinished = txn.stat(store.unfinished)["entries"]
            map_used = store.map_used(txn)
        return LogInfo(
            location=str(self.path),
            format=FORMAT,
            size=store.file_size(),
            map_used=map_used,
            map_size=store.map_size,
            max_map_size=store.max_map_size,
            records=records,
            transactions=transactions,
            unfinished=unfinished,
            syncs=store.syncs,
            last_sync=store.last_sync,
        )

    # -- maintenance ------------------------------------------------------------------------

    def compact(self, before: float) -> Compacted:
        if (
            isinstance(before, bool)
            or not isinstance(before, int | float)
            or not math.isfinite(before)
        ):
            raise InvalidOptionError(
                f"before is a time in seconds since the epoch (a finite number): finished "
                f"transactions that ended before it are deleted; not {before!r}"
            )
        self._writer()
        return _compact.compact(self._store, before)

    def close(self) -> None:
        """Write what is queued, then release the log. Idempotent."""
        self._shutdown(write_pending=True)

    def abandon(self) -> None:
        """Release the log without writing what is queued: the in-process stand-in for
        kill -9 (tests, fault injection). Waiters get CoordinatorClosedError."""
        self._shutdown(write_pending=False)

    def _shutdown(self, write_pending: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._commit is not None:
            self._commit.close(write_pending=write_pending)
        self._store.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> LmdbLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
