"""Repair a damaged log: keep a byte-exact copy first, then remove what cannot be trusted.

A record that fails its checksum, or breaks the transition table, in an *unfinished*
transaction puts that transaction in doubt at start-up (:mod:`dtc_wal.wal.unfinished`):
recovery cannot follow a history it cannot read, and it never guesses, so the transaction
stays unfinished, untouched, until an operator settles it. The way out (docs/recovery.md,
"Repairing a damaged log"):

1. :func:`backup_log` -- a byte-exact copy of ``data.mdb`` next to the log, taken under the
   directory lock (no writer can change the file meanwhile). :func:`drop_transaction` makes
   one itself before it changes anything.
2. :func:`drop_transaction` -- collects the evidence (the index summary, every readable
   record of the transaction, the damaged LSNs), then removes that transaction's records
   and index entries in one LMDB write transaction. It is no longer in doubt.
3. The operator settles the dropped transaction's participants by hand, from the evidence
   in the returned :class:`RepairReport` (participants, factories, params, last known
   states): the log no longer knows it, so recovery will not.

Nothing here runs while a live coordinator holds the log (:class:`LogLockedError`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lmdb

from ..errors import DtcError, TransactionStateError, UnknownTransactionError
from ..history import replay
from ..records import LogRecord, decode_record, key_lsn, lsn_key, unframe, unpack
from .store import DirectoryLock, LogStore

__all__ = ["RepairReport", "backup_log", "drop_transaction"]


@dataclasses.dataclass(slots=True)
class RepairReport:
    """What :func:`drop_transaction` kept as evidence and removed."""

    path: str
    txid: str
    backup: str
    """The byte-exact copy of the log taken before anything changed."""
    summary: dict[str, Any] | None
    """The ``txns`` index entry (state, participants' states), None when unreadable."""
    records: list[dict[str, Any]]
    """Every readable record of the transaction, in log order (``LogRecord.to_dict``)."""
    damaged: dict[int, str]
    """LSN -> why that record could not be used (LSN 0: the index entry)."""
    removed_lsns: list[int]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _backup(directory: Path, target: Path | None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = target or directory.with_name(f"{directory.name}.damaged-{stamp}")
    dest.mkdir(parents=True, exist_ok=False)
    copied = dest / "data.mdb"
    shutil.copyfile(directory / "data.mdb", copied)
    with open(copied, "rb") as f:
        os.fsync(f.fileno())
    return dest


def backup_log(path: str | os.PathLike[str], target: str | os.PathLike[str] | None = None) -> Path:
    """Copy ``<log>/data.mdb`` byte for byte to ``target`` (default ``<log>.damaged-<UTC
    time>``, which must not exist) and return the directory. The copy is itself a log:
    ``dtc verify`` and ``dtc show`` read it."""
    directory = Path(path)
    lock = DirectoryLock(directory)
    lock.acquire()
    try:
        return _backup(directory, Path(target) if target is not None else None)
    finally:
        lock.release()


def drop_transaction(
    path: str | os.PathLike[str],
    txid: str,
    *,
    extra_lsns: Iterable[int] = (),
    backup_to: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> RepairReport:
    """Back the log up, then remove transaction ``txid`` (its records and index entries).

    ``extra_lsns``: damaged records of this transaction that the index does not list (when
    its summary is damaged too; ``dtc verify`` names them). A transaction whose records all
    read and replay cleanly is refused unless ``force`` -- recovery can finish it.
    """
    directory = Path(path)
    lock = DirectoryLock(directory)
    lock.acquire()
    try:
        store = LogStore(directory)
        try:
            report = _evidence(store, txid, set(extra_lsns))
            if not report.damaged and not force:
                raise TransactionStateError(
                    f"transaction {txid} is not damaged: its records read and replay, so "
                    "recovery can finish it; pass force=True to drop it anyway"
                )
            report.backup = str(_backup(directory, Path(backup_to) if backup_to else None))
            store.write(lambda txn: _remove(store, txn, txid, report.removed_lsns))
        finally:
            store.close()
    finally:
        lock.release()
    return report


def _evidence(store: LogStore, txid: str, extra: set[int]) -> RepairReport:
    report = RepairReport(str(store.path), txid, "", None, [], {}, [])
    lsns = set(extra)
    with store.reader() as txn:
        raw = txn.get(txid.encode(), db=store.txns)
        if raw is not None:
            try:
                summary = unpack(unframe(bytes(raw), what=f"summary of {txid}"))
                if not isinstance(summary, dict) or not isinstance(summary.get("l"), list):
                    raise TypeError("not a summary")
                report.summary = summary
                lsns.update(lsn for lsn in summary["l"] if isinstance(lsn, int))
            except (DtcError, TypeError) as exc:
                report.damaged[0] = f"index entry unreadable: {exc}"
        readable: list[tuple[int, LogRecord]] = []
        with txn.cursor(db=store.records) as cur:
            for key, value in cur:
                lsn = key_lsn(bytes(key))
                try:
                    record = decode_record(bytes(value), lsn)
                except DtcError as exc:
                    if lsn in lsns:
                        report.damaged[lsn] = str(exc)
                    continue
                if record.txid == txid:
                    lsns.add(lsn)
                    readable.append((lsn, record))
                elif lsn in extra:
                    raise TransactionStateError(
                        f"LSN {lsn} is a readable record of transaction {record.txid}, not of "
                        f"{txid}; pass only the damaged LSNs `dtc verify` names for {txid}"
                    )
    if raw is None and not readable:
        raise UnknownTransactionError(txid)
    missing = lsns - {lsn for lsn, _ in readable} - set(report.damaged)
    for lsn in sorted(missing):
        report.damaged[lsn] = "listed for this transaction but missing from the log"
    report.records = [dict(r.to_dict(), lsn=lsn) for lsn, r in readable]
    if readable and not report.damaged:
        try:
            replay(readable)
        except DtcError as exc:
            report.damaged[readable[0][0]] = f"history does not replay: {exc}"
    report.removed_lsns = sorted(lsns)
    return report


def _remove(store: LogStore, txn: lmdb.Transaction, txid: str, lsns: list[int]) -> None:
    # Invariant: meta/last-lsn stays the high-water mark, so no LSN is ever handed out twice.
    raw = txn.get(b"last-lsn", db=store.meta)
    if raw is None or key_lsn(bytes(raw)) < store.last_lsn:
        txn.put(b"last-lsn", lsn_key(store.last_lsn), db=store.meta)
    for lsn in lsns:
        txn.delete(lsn_key(lsn), db=store.records)
    key = txid.encode()
    txn.delete(key, db=store.txns)
    txn.delete(key, db=store.unfinished_db)
