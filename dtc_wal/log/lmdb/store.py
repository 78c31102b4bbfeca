"""The LMDB environment of a format-2 log: tables, the format check, map growth, commits.

Tables (LMDB named databases; docs/log-format.md is the spec):

* ``records``    transaction number (8 bytes) + sequence (4 bytes) -> framed record; a
  transaction's records are one cursor range, and new transactions append at the end;
* ``txns``       txid (UTF-8) -> transaction number, for every stored transaction;
* ``unfinished`` transaction number -> txid, from ``Opened`` until ``Ended``, so start-up
  reads only these, oldest first;
* ``meta``       ``format`` (8-byte big-endian 2) and ``last-tn`` (the high-water mark).

This module knows no records and no group commit: :mod:`.writer` writes, :mod:`.reader`
reads, both through :meth:`LmdbStore.write` and :meth:`LmdbStore.reader`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import lmdb

from ...errors import (
    LogCorruptError,
    LogError,
    LogFullError,
    LogLockedError,
    UnsupportedFormatError,
)
from .codec import FORMAT, TN
from .read_only import check_readable

__all__ = ["COMPACTION_HEADROOM", "MIB", "LmdbStore"]

MIB = 1024 * 1024

log = logging.getLogger("dtc_wal.log")

T = TypeVar("T")

_TABLES = (b"records", b"txns", b"unfinished", b"meta")

COMPACTION_HEADROOM = 4 * MIB
"""How far past ``max_map_size`` compaction may grow the map to delete from a full log."""


class _ReadWriteGate:
    """Many readers or one map resize: LMDB forbids set_mapsize while a txn is open."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._resizing = False

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._resizing or self._readers:
                self._cond.wait()
            self._resizing = True
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class LmdbStore:
    """An open format-2 LMDB log directory. Reads from any thread; writes serialized."""

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        map_size: int = 64 * MIB,
        max_map_size: int = 8 * 1024 * MIB,
        sync: bool = True,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self.max_map_size = max(max_map_size, map_size)
        # A reader that may not write lock.mdb reads without it (and check_readable warns).
        without_lock = check_readable(path) if readonly else False
        self.lockless = without_lock
        try:
            self.env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=len(_TABLES) + 1,
                readonly=readonly,
                lock=not without_lock,
                sync=sync,
                metasync=sync,
                readahead=False,
                max_readers=256,
                subdir=True,
            )
        except lmdb.Error as exc:
            if "already open in this process" in str(exc):
                raise LogLockedError(
                    f"the log at {path} is already open in this process: read and append "
                    "through that log object"
                ) from exc
            raise LogError(f"cannot open the log at {path}: {exc}") from exc
        # Slots of readers that died (a SIGKILLed process) are freed now, and counted.
        self.stale_readers_cleared = 0 if readonly else self.env.reader_check()
        self._gate = _ReadWriteGate()
        self._write_mu = threading.Lock()
        self.syncs = 0
        """Durable commits since open (commits, when opened with ``sync=False``)."""
        self.last_sync: float | None = None
        try:
            self._open_tables()
        except BaseException:
            self.env.close()
            raise

    def _open_tables(self) -> None:
        with self.env.begin() as txn:
            known = txn.get(b"meta") is not None
        if not known:
            if self.readonly or self.env.stat()["entries"]:
                raise LogError(
                    f"{self.path} holds an LMDB environment that is not a dtc-wal log "
                    "(no meta table): give the directory a log was opened on"
                )
            with self.env.begin(write=True) as txn:
                dbs = [self.env.open_db(name, txn=txn, create=True) for name in _TABLES]
                txn.put(b"format", TN.pack(FORMAT), db=dbs[-1])
        else:
            meta = self.env.open_db(b"meta", create=False)
            with self.env.begin() as txn:
                raw = txn.get(b"format", db=meta)
            if raw is not None and len(raw) != TN.size:
                raise LogCorruptError(
                    f"the log at {self.path} is damaged: meta/format is {len(raw)} bytes, "
                    f"expected {TN.size}. Keep a copy of the directory and restore data.mdb "
                    "from a good backup"
                )
            version = TN.unpack(raw)[0] if raw is not None else None
            if version == 1:
                raise UnsupportedFormatError(
                    f"the log at {self.path} is in format 1, written by a dtc-wal before "
                    "the redesign; this version reads format 2. Convert it with `dtc "
                    f"upgrade {self.path} --in-place` (the original is kept beside it)"
                )
            if version != FORMAT:
                raise UnsupportedFormatError(
                    f"the log at {self.path} has format {version!r}; this build reads "
                    f"format {FORMAT}: use the dtc-wal version that wrote it"
                )
            try:
                dbs = [self.env.open_db(name, create=False) for name in _TABLES]
            except lmdb.NotFoundError as exc:
                raise LogError(
                    f"the log at {self.path} is missing a table ({exc}): it is damaged; "
                    "restore it from a backup"
                ) from exc
        self.records, self.txns, self.unfinished, self.meta = dbs

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self.env.close()

    # -- writes -----------------------------------------------------------------------------

    def write(self, body: Callable[[lmdb.Transaction], T], *, freeing: bool = False) -> T:
        """Run ``body`` in one write transaction, commit and sync; grow the map when full.

        ``body`` may run more than once (after a map growth) and must be repeatable; on
        any error nothing of it is written. A ``freeing`` body (compaction) may grow the
        map up to COMPACTION_HEADROOM past ``max_map_size``: even deletes need fresh pages
        in LMDB, and a full log must stay compactable.
        """
        # Invariant: the map is resized only under _write_mu with no write transaction
        # open, and _gate.exclusive() waits out this process's readers (LMDB's rule).
        with self._write_mu:
            while True:
                txn = self.env.begin(write=True)
                try:
                    result = body(txn)
                    txn.commit()
                except lmdb.MapFullError as exc:
                    txn.abort()
                    self._grow(exc, freeing)
                    continue
                except lmdb.Error as exc:
                    txn.abort()
                    raise LogError(
                        f"writing the log at {self.path} failed ({exc}); nothing of this "
                        "batch was written and earlier records are intact -- check the disk"
                    ) from exc
                except BaseException:
                    txn.abort()
                    raise
                self.syncs += 1
                self.last_sync = time.time()
                return result

    def _grow(self, cause: Exception, freeing: bool = False) -> None:
        current = self.map_size
        limit = self.max_map_size + (COMPACTION_HEADROOM if freeing else 0)
        if current >= limit:
            raise LogFullError(
                f"the log at {self.path} is full at its maximum of {current / MIB:g} MiB; "
                "nothing logged was lost. Compact finished transactions or reopen the log "
                "with a larger max_map_size"
            ) from cause
        new = min(limit, max(current * 2, self.max_map_size) if freeing else current * 2)
        with self._gate.exclusive():
            self.env.set_mapsize(new)
        if new < self.max_map_size:
            log.info("log at %s grew from %g to %g MiB", self.path, current / MIB, new / MIB)
            return
        log.warning(
            "log at %s grew from %g to %g MiB, its maximum map size, %g MiB: when that is "
            "full, writes fail with LogFullError (nothing logged is lost); compact finished "
            "transactions (`dtc compact`) or reopen with a larger max_map_size",
            self.path, current / MIB, new / MIB, self.max_map_size / MIB,
        )  # fmt: skip

    @property
    def map_size(self) -> int:
        size: int = self.env.info()["map_size"]
        return size

    def map_used(self, txn: lmdb.Transaction) -> int:
        """Bytes of the map holding data as of ``txn``: the pages of every table and the
        two meta pages. Pages compaction freed are not counted (LMDB reuses them before
        growing the file), so this goes down after a compaction, as a fullness gauge must."""
        main = self.env.stat()
        pages = 2 + main["branch_pages"] + main["leaf_pages"] + main["overflow_pages"]
        for db in (self.records, self.txns, self.unfinished, self.meta):
            stat = txn.stat(db)
            pages += stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
        high = int(self.env.info()["last_pgno"]) + 1
        psize: int = main["psize"]
        return min(pages, high) * psize

    # -- reads ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reader(self) -> Iterator[lmdb.Transaction]:
        """A read transaction: one consistent snapshot; keep it short (it pins pages)."""
        while True:
            with self._gate.read():
                try:
                    txn = self.env.begin()
                except lmdb.MapResizedError:
                    pass  # another process grew the map: adopt its size, below
                else:
                    try:
                        yield txn
                    finally:
                        txn.abort()
                    return
            with self._gate.exclusive():
                self.env.set_mapsize(0)

    def file_size(self) -> int:
        return os.stat(self.path / "data.mdb").st_size
