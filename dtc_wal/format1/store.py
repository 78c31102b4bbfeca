"""The LMDB environment behind the log: tables, the directory lock, map growth, reads.

Tables (LMDB named databases), all described in docs/log-format.md:

* ``records``    LSN (8-byte big-endian) -> framed msgpack record, appended in order;
* ``txns``       txid (UTF-8) -> framed summary of the transaction (state, LSNs, ...);
* ``unfinished`` txid -> empty value, for every transaction not yet completed, so start-up
  reads only these and never the history;
* ``meta``       ``format`` and ``last-lsn`` (8-byte big-endian).

This module knows nothing of participants or of group commit; :mod:`.writer` does.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from .. import _crash_hooks as points
from ..errors import LogCorruptError, LogError, LogFullError, UnsupportedFormatError
from ..log.lmdb.directory import DirectoryLock, make_log_directory
from ..log.lmdb.read_only import check_readable
from ..log.lmdb.store import MIB, _ReadWriteGate
from .records import (
    FORMAT_VERSION,
    LogRecord,
    decode_record,
    frame,
    key_lsn,
    lsn_key,
    pack,
    unframe,
    unpack,
)

__all__ = ["DirectoryLock", "LogStore", "Summary"]

log = logging.getLogger("dtc_wal.format1")

T = TypeVar("T")
Summary = dict[str, Any]


class LogStore:
    """An open LMDB log directory. Thread-safe for reads; writes go through :meth:`write`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        map_size: int = 64 * MIB,
        max_map_size: int = 8 * 1024 * MIB,
        sync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.max_map_size = max(max_map_size, map_size)
        self.lockless = readonly and check_readable(self.path)
        """Read without LMDB's lock file (:mod:`.read_only`): a live writer could tear it."""
        if not readonly:
            make_log_directory(self.path)  # LogError says what is in the way
        try:
            self.env = lmdb.open(
                str(self.path),
                map_size=map_size,
                max_dbs=8,
                readonly=readonly,
                sync=sync,
                metasync=sync,
                readahead=False,
                max_readers=256,
                subdir=True,
                lock=not self.lockless,
            )
        except lmdb.Error as exc:
            raise LogError(f"cannot open log at {self.path}: {exc}") from exc
        self._gate = _ReadWriteGate()
        try:
            self.stale_readers_cleared = 0 if readonly else self.env.reader_check()
            create = not readonly
            self.records = self.env.open_db(b"records", create=create)
            self.txns = self.env.open_db(b"txns", create=create)
            self.unfinished_db = self.env.open_db(b"unfinished", create=create)
            self.meta = self.env.open_db(b"meta", create=create)
            self.syncs = 0
            self.last_lsn = self._read_last_lsn()
        except BaseException as exc:
            self.env.close()
            if isinstance(exc, lmdb.Error):  # e.g. a table missing from a read-only log
                raise LogError(f"cannot open log at {self.path}: {exc}") from exc
            raise

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _meta_int(self, txn: lmdb.Transaction, key: bytes) -> int | None:
        """An 8-byte meta value; a damaged one stops a writer (readers go on: `dtc verify`
        reports it). The meta table is the log's own state, not one transaction's."""
        raw = txn.get(key, db=self.meta)
        if raw is None or len(raw) == 8:
            return None if raw is None else key_lsn(bytes(raw))
        if self.readonly:
            return None
        raise LogCorruptError(
            f"log at {self.path}: meta/{key.decode()} is {len(raw)} bytes, not 8 -- the log's "
            "own meta table is damaged, so no coordinator may write to it (it could reuse "
            "LSNs or misread the format). Keep a copy (`dtc backup`), see `dtc verify`, and "
            "restore data.mdb from a good backup"
        )

    def _read_last_lsn(self) -> int:
        with self.env.begin(write=not self.readonly) as txn:
            fmt = self._meta_int(txn, b"format")
            if fmt is None and not self.readonly and txn.get(b"format", db=self.meta) is None:
                txn.put(b"format", lsn_key(FORMAT_VERSION), db=self.meta)
            elif fmt == 2:
                raise UnsupportedFormatError(
                    f"log at {self.path} is in format 2: this reader of format-1 logs (for "
                    "`dtc upgrade`) has nothing to do with it; open it with "
                    "TransactionCoordinator or any `dtc` command"
                )
            elif fmt is not None and fmt != FORMAT_VERSION:
                raise UnsupportedFormatError(
                    f"log at {self.path} has format {fmt}; this build reads "
                    f"{FORMAT_VERSION}: use a matching dtc-wal version"
                )
            last = self._meta_int(txn, b"last-lsn") or 0
            with txn.cursor(db=self.records) as cur:
                if cur.last():
                    key = bytes(cur.key())
                    if len(key) != 8:
                        raise LogCorruptError(
                            f"log at {self.path}: the last record key is {len(key)} bytes, not "
                            "an 8-byte LSN; the records table is damaged -- run `dtc verify`"
                        )
                    last = max(last, key_lsn(key))
            return last

    # -- writes -----------------------------------------------------------------------------

    def write(self, body: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``body`` in one write transaction, commit and sync; grow the map when full.

        ``body`` may run more than once (after a map growth) and must be repeatable.
        """
        while True:
            try:
                with self._gate.read():
                    txn = self.env.begin(write=True)
                    try:
                        result = body(txn)
                    except BaseException:
                        txn.abort()
                        raise
                    if points.ARMED:
                        points.hit("wal.before-sync")
                    txn.commit()
                    self.syncs += 1
                    return result
            except lmdb.MapFullError as exc:
                self._grow(exc)
            except lmdb.Error as exc:
                raise LogError(
                    f"writing the log at {self.path} failed ({exc}); nothing of this batch "
                    "was written and earlier records are intact -- check the disk"
                ) from exc

    def _grow(self, cause: Exception) -> None:
        current = self.env.info()["map_size"]
        if current >= self.max_map_size:
            raise LogFullError(
                f"log at {self.path} is full at its maximum of {current / MIB:g} MiB; nothing "
                "logged was lost. Finish or compact old transactions (`dtc compact`) or "
                "open the coordinator with a larger max_map_size"
            ) from cause
        new = min(self.max_map_size, current * 2)
        with self._gate.exclusive():
            self.env.set_mapsize(new)
        if new >= self.max_map_size:
            log.warning(
                "log at %s grew to its maximum map size, %g MiB: when that is full, writes "
                "fail with LogFullError -- compact it (`dtc compact`) or reopen with a larger "
                "max_map_size",
                self.path,
                new / MIB,
            )
        else:
            log.info("log at %s grew from %g to %g MiB", self.path, current / MIB, new / MIB)

    @property
    def map_size(self) -> int:
        size: int = self.env.info()["map_size"]
        return size

    # -- reads ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reader(self) -> Iterator[lmdb.Transaction]:
        with self._gate.read():
            try:
                txn = self.env.begin()
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)  # adopt the size another process grew it to
                txn = self.env.begin()
            try:
                yield txn
            finally:
                txn.abort()

    def summary(self, txid: str, txn: lmdb.Transaction | None = None) -> Summary | None:
        if txn is None:
            with self.reader() as rtxn:
                return self.summary(txid, rtxn)
        try:
            raw = txn.get(txid.encode(), db=self.txns)
        except lmdb.BadValsizeError:  # empty or longer than LMDB's key limit: never a txid
            return None
        if raw is None:
            return None
        decoded: Summary = unpack(unframe(bytes(raw), what=f"summary of {txid}"))
        return decoded

    def record(self, lsn: int, txn: lmdb.Transaction) -> LogRecord:
        raw = txn.get(lsn_key(lsn), db=self.records)
        if raw is None:
            raise LogCorruptError(f"record at LSN {lsn} is missing from the log", lsn)
        return decode_record(bytes(raw), lsn)

    def records_of(self, txid: str) -> list[tuple[int, LogRecord]]:
        """Every record of one transaction, in log order (empty when unknown)."""
        with self.reader() as txn:
            summary = self.summary(txid, txn)
            if summary is None:
                return []
            return [(lsn, self.record(lsn, txn)) for lsn in summary["l"]]

    def unfinished_txids(self) -> list[str]:
        with self.reader() as txn, txn.cursor(db=self.unfinished_db) as cur:
            return [bytes(k).decode() for k in cur.iternext(keys=True, values=False)]

    def iter_records(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Raw ``(lsn, value)`` pairs from ``start`` in log order (values undecoded)."""
        with self.reader() as txn, txn.cursor(db=self.records) as cur:
            if not cur.set_range(lsn_key(start)):
                return
            for key, value in cur:
                yield key_lsn(bytes(key)), bytes(value)

    def iter_summaries(self) -> Iterator[tuple[str, bytes]]:
        """Raw ``(txid, framed summary)`` pairs in txid order."""
        with self.reader() as txn, txn.cursor(db=self.txns) as cur:
            for key, value in cur:
                yield bytes(key).decode(), bytes(value)

    def counts(self) -> dict[str, int]:
        with self.reader() as txn:
            return {
                "records": txn.stat(self.records)["entries"],
                "transactions": txn.stat(self.txns)["entries"],
                "unfinished": txn.stat(self.unfinished_db)["entries"],
            }

    def used_bytes(self) -> int:
        info = self.env.info()
        psize: int = self.env.stat()["psize"]
        return (int(info["last_pgno"]) + 1) * psize


def put_summary(
    txn: lmdb.Transaction,
    store: LogStore,
    txid: str,
    summary: Summary,
    listed: bool | None = None,
) -> None:
    """Write a transaction's summary and keep the ``unfinished`` table in step.

    ``listed`` says whether ``unfinished`` already holds the txid (None: unknown), which
    saves the table write for every batch between a transaction's first and last record.
    """
    key = txid.encode()
    txn.put(key, frame(pack(summary)), db=store.txns)
    if summary["s"] in ("committed", "aborted"):
        if listed is not False:
            txn.delete(key, db=store.unfinished_db)
    elif not listed:
        txn.put(key, b"", db=store.unfinished_db)
