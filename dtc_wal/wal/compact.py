"""Retention: delete finished transactions older than a limit, then shrink the file by a copy.

Two steps (``dtc compact``):

1. **Delete.** Every *finished* transaction (committed or aborted) whose last record is
   older than the limit loses its records and its ``txns`` entry, in bounded LMDB write
   transactions (at most ``batch_records`` records each), so a large compaction never holds
   one huge write transaction. Each batch re-reads the summary inside its write
   transaction and skips anything not finished: an unfinished transaction is never deleted.
   ``meta/last-lsn`` is written first, so deleting the newest records never lets a writer
   reuse their LSNs.
2. **Shrink.** LMDB reuses freed pages but never shrinks its file. When enough of the file
   is free (or when asked), the environment is copied with ``compact=True`` into
   ``<log>/compact.tmp/``, the copy is checked (same record and transaction counts), and
   swapped in with an atomic rename. The old file stays in place until the copy is complete
   and checked; at every moment ``data.mdb`` is a complete log.

Both steps hold the directory lock (:class:`~dtc_wal.wal.store.DirectoryLock`), so they
refuse with :class:`~dtc_wal.errors.LogLockedError` while a live coordinator holds the log.
A dry run only reads, and works while a coordinator runs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

import lmdb

from ..errors import LogCorruptError, LogError
from ..options import count, non_negative
from ..records import key_lsn, lsn_key, unframe, unpack
from .store import DirectoryLock, LogStore
from .verify import Progress

__all__ = ["CompactReport", "compact_log"]

COPY_DIR = "compact.tmp"
OLD_SUFFIX = ".old"
_FINISHED = ("committed", "aborted")
_AUTO_COPY_RATIO = 0.10  # shrink the file when at least this share of it is free


@dataclasses.dataclass(slots=True)
class CompactReport:
    """What :func:`compact_log` removed (or would remove, with ``dry_run``) and freed."""

    path: str
    keep: float
    """Seconds: finished transactions whose last record is older than this were removed."""
    cutoff: float
    """The epoch time ``now - keep``."""
    dry_run: bool = False
    transactions_removed: int = 0
    records_removed: int = 0
    finished_kept: int = 0
    """Finished transactions younger than the limit."""
    unfinished_kept: int = 0
    """Unfinished transactions: never removed, whatever their age."""
    copied: bool = False
    """True when the file was shrunk by a compacting copy."""
    file_bytes_before: int = 0
    file_bytes_after: int = 0
    free_bytes: int = 0
    """Estimated free space inside the file after the deletion (before any copy)."""

    @property
    def freed_bytes(self) -> int:
        """Bytes the file shrank by (0 without a copy: LMDB reuses free pages instead)."""
        return max(0, self.file_bytes_before - self.file_bytes_after)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["freed_bytes"] = self.freed_bytes
        return out

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"{verb} {self.transactions_removed} finished transaction(s) "
            f"({self.records_removed} record(s)); kept {self.finished_kept} finished and "
            f"{self.unfinished_kept} unfinished"
        )


def compact_log(
    path: str | os.PathLike[str],
    *,
    keep: float,
    now: float | None = None,
    dry_run: bool = False,
    copy: bool | None = None,
    batch_records: int = 10_000,
    progress: Progress | None = None,
) -> CompactReport:
    """Remove finished transactions older than ``keep`` seconds from the log at ``path``.

    ``copy``: ``None`` shrinks the file by a compacting copy when at least 10% of it is
    free, ``True`` always, ``False`` never. ``progress(done, total)`` is called as
    transactions are removed. Raises :class:`~dtc_wal.errors.LogLockedError` while a live
    coordinator holds the log (not with ``dry_run``), :class:`~dtc_wal.errors.LogError`
    when there is no log at ``path``.

    >>> import tempfile
    >>> from dtc_wal import TransactionCoordinator
    >>> path = tempfile.mkdtemp()
    >>> with TransactionCoordinator(path) as coord:
    ...     txid = coord.begin_transaction()
    ...     coord.register_participant(txid, "step", lambda t, d: None, lambda t: None)
    ...     coord.commit_transaction(txid)
    >>> compact_log(path, keep=0).summary()
    'removed 1 finished transaction(s) (6 record(s)); kept 0 finished and 0 unfinished'
    """
    non_negative("keep", keep)
    count("batch_records", batch_records, 1)
    directory = Path(path)
    if not (directory / "data.mdb").exists():
        raise LogError(f"no log at {directory}: give the directory a coordinator was opened on")
    now = time.time() if now is None else now
    report = CompactReport(path=str(directory), keep=keep, cutoff=now - keep, dry_run=dry_run)
    report.file_bytes_before = report.file_bytes_after = _file_size(directory)
    if dry_run:
        with LogStore(directory, readonly=True) as store:
            victims = _select(store, report)
        report.transactions_removed = len(victims)
        report.records_removed = sum(n for _, n in victims)
        return report

    lock = DirectoryLock(directory)
    lock.acquire()  # LogLockedError while a live coordinator holds the log
    try:
        _remove_leftovers(directory)
        with LogStore(directory) as store:
            victims = _select(store, report)
            _delete(store, victims, report, batch_records, progress)
            report.free_bytes = _free_bytes(store)
            size = _file_size(directory)
            if copy is None:
                wanted = report.free_bytes > 0 and size * _AUTO_COPY_RATIO <= report.free_bytes
            else:
                wanted = copy
            if wanted:
                _copy(store, directory / COPY_DIR)
                report.copied = True
        if report.copied:
            _swap(directory)
        report.file_bytes_after = _file_size(directory)
    finally:
        lock.release()
    return report


# -- step 1: select and delete -------------------------------------------------------------


def _summary(raw: bytes, txid: str) -> dict[str, Any]:
    summary = unpack(unframe(raw, what=f"summary of {txid}"))
    if not isinstance(summary, dict) or not isinstance(summary.get("l"), list):
        raise LogCorruptError(
            f"summary of {txid} is not a valid summary; run `dtc verify` before compacting"
        )
    return summary


def _select(store: LogStore, report: CompactReport) -> list[tuple[str, int]]:
    """``(txid, record count)`` of every finished transaction last updated before the cutoff."""
    victims: list[tuple[str, int]] = []
    with store.reader() as txn:
        unfinished = txn.stat(store.unfinished_db)["entries"]
        with txn.cursor(db=store.txns) as cur:
            for raw_key, raw_value in cur:
                txid = bytes(raw_key).decode("utf-8", "replace")
                summary = _summary(bytes(raw_value), txid)
                if summary.get("s") not in _FINISHED:
                    continue
                updated = summary.get("u")
                if isinstance(updated, int | float) and updated < report.cutoff:
                    victims.append((txid, len(summary["l"])))
                else:
                    report.finished_kept += 1
    report.unfinished_kept = int(unfinished)
    return victims


def _delete(
    store: LogStore,
    victims: list[tuple[str, int]],
    report: CompactReport,
    batch_records: int,
    progress: Progress | None,
) -> None:
    # Invariant: meta/last-lsn is the high-water mark before any record is deleted, so
    # removing the newest transactions can never hand their LSNs out again.
    high = store.last_lsn

    def keep_high_water(txn: lmdb.Transaction) -> None:
        raw = txn.get(b"last-lsn", db=store.meta)
        if raw is None or key_lsn(bytes(raw)) < high:
            txn.put(b"last-lsn", lsn_key(high), db=store.meta)

    store.write(keep_high_water)
    total, done, start = len(victims), 0, 0
    while start < total:
        end, records = start, 0
        while end < total and (end == start or records + victims[end][1] <= batch_records):
            records += victims[end][1]
            end += 1
        batch = [txid for txid, _ in victims[start:end]]

        def body(txn: lmdb.Transaction, batch: list[str] = batch) -> tuple[int, int]:
            removed_tx = removed_records = 0
            for txid in batch:
                key = txid.encode()
                raw = txn.get(key, db=store.txns)
                if raw is None:
                    continue
                summary = _summary(bytes(raw), txid)
                # Re-checked inside the write transaction: never delete an unfinished one.
                if summary["s"] not in _FINISHED or txn.get(key, db=store.unfinished_db):
                    continue
                for lsn in summary["l"]:
                    if txn.delete(lsn_key(lsn), db=store.records):
                        removed_records += 1
                txn.delete(key, db=store.txns)
                removed_tx += 1
            return removed_tx, removed_records

        removed_tx, removed_records = store.write(body)
        report.transactions_removed += removed_tx
        report.records_removed += removed_records
        done, start = end, end
        if progress is not None:
            progress(done, total)


# -- step 2: shrink the file by a compacting copy ------------------------------------------


def _file_size(directory: Path) -> int:
    try:
        return (directory / "data.mdb").stat().st_size
    except FileNotFoundError:
        return 0


def _free_bytes(store: LogStore) -> int:
    """Pages in the file that no table uses (LMDB's free list), in bytes; an estimate."""
    env_stat = store.env.stat()
    psize = int(env_stat["psize"])
    used = 2 + sum(
        int(env_stat[k]) for k in ("branch_pages", "leaf_pages", "overflow_pages")
    )  # 2 meta pages plus the main table, which holds the named tables' roots
    with store.reader() as txn:
        for db in (store.records, store.txns, store.unfinished_db, store.meta):
            stat = txn.stat(db)
            used += int(stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"])
    total = int(store.env.info()["last_pgno"]) + 1
    return max(0, total - used) * psize


def _remove_leftovers(directory: Path) -> None:
    """Clear what an interrupted compaction left; ``data.mdb`` itself is always complete."""
    shutil.rmtree(directory / COPY_DIR, ignore_errors=True)
    (directory / ("data.mdb" + OLD_SUFFIX)).unlink(missing_ok=True)


def _copy(store: LogStore, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    try:
        store.env.copy(str(target), compact=True)
        _fsync(target / "data.mdb")
        with LogStore(target, readonly=True) as copy:
            copied = (copy.counts(), copy.last_lsn)
        if copied != (store.counts(), store.last_lsn):
            raise LogError(
                f"the compacted copy of {store.path} differs from the log ({copied[0]} vs "
                f"{store.counts()}); the log was left unchanged"
            )
    except (OSError, lmdb.Error) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise LogError(
            f"compacting {store.path} by a copy failed ({exc}); the old transactions are "
            "removed but the file was not shrunk -- free disk space and run `dtc compact` "
            "again"
        ) from exc
    except LogError:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _swap(directory: Path) -> None:
    """Put the checked copy in place of ``data.mdb`` (the environment must be closed)."""
    data = directory / "data.mdb"
    old = directory / ("data.mdb" + OLD_SUFFIX)
    copy = directory / COPY_DIR / "data.mdb"
    old.unlink(missing_ok=True)
    os.link(data, old)  # the old file survives until the new one is in place
    os.replace(copy, data)  # atomic: data.mdb is the old or the new log, never neither
    # lock.mdb describes the old file (its reader table and transaction id); a fresh one is
    # created by the next opener. Readers still open keep the old pair of files.
    (directory / "lock.mdb").unlink(missing_ok=True)
    _fsync_dir(directory)
    old.unlink()
    shutil.rmtree(directory / COPY_DIR, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
