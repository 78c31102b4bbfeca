"""Convert a format-1 log directory into a new format-2 log (``dtc upgrade``).

Never silent, never in the original: the format-1 log is read under its directory lock
(a live coordinator holding it -> :class:`~dtc_wal.errors.LogLockedError`), every
transaction is converted and checked by :mod:`.upgrade_convert`, the new log is written to
a new directory, read back and verified (:func:`.verify.verify_log`, plus every record
compared with what was converted), and only then put in place:

* ``to=DIR``: the new log is written beside DIR and renamed to DIR when complete; the
  original is left where it is, unchanged.
* ``in_place=True``: the new log is written to ``<log>.upgrade-<time>``, then atomically
  exchanged with ``<log>`` (Linux ``renameat2(RENAME_EXCHANGE)``), and the original, now
  under the working name, is renamed ``<log>.format1-<time>``. A crash at any moment leaves
  the original untouched at ``<log>`` (with a partial or complete working copy beside it),
  or both logs. Where the exchange is not available, the original is renamed aside first,
  and a crash between the two renames leaves no ``<log>``: both logs exist beside it.

A transaction that cannot be read back from format 1 (damage, a refused transition, an
index that disagrees) is never guessed at: it is listed, and the upgrade refuses unless
``skip_damaged``; then it is left out of the new log and stays in the original (the
evidence). A transaction whose format-2 records would read back differently is listed and
always refuses the upgrade.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import _crash_hooks as points
from ..errors import (
    InvalidOptionError,
    LogCorruptError,
    LogError,
    LogLockedError,
    UnsupportedFormatError,
)
from ..format1.records import LogRecord
from ..format1.store import LogStore
from ..format1.verify import verify_log as verify_format1
from ..log.lmdb import LmdbLog
from ..log.lmdb.directory import DirectoryLock
from ..protocol.records import Record
from .upgrade_convert import NotConvertible, convert_checked
from .verify import log_format, verify_log

__all__ = ["NotConverted", "UpgradeReport", "upgrade_log"]

log = logging.getLogger("dtc_wal.log")

BATCH = 256
"""Transactions written per durable append of the new log."""


@dataclasses.dataclass(frozen=True, slots=True)
class NotConverted:
    """A transaction left out: ``damaged`` (format 1 cannot read it back) or not (its
    format-2 records would say something else). ``txid`` None: damage no transaction owns."""

    txid: str | None
    reason: str
    damaged: bool

    def __str__(self) -> str:
        return f"{self.txid or '(no transaction)'}: {self.reason}"


@dataclasses.dataclass(slots=True)
class UpgradeReport:
    """What :func:`upgrade_log` did (or, ``dry_run``, would do)."""

    source: str
    target: str | None
    """Where the format-2 log is (None: a dry run)."""
    evidence: str | None
    """Where the format-1 original is kept afterwards (None: a dry run)."""
    dry_run: bool
    transactions: int = 0
    """Format-1 transactions read (converted or not)."""
    converted: int = 0
    unfinished: int = 0
    """Converted transactions that have not ended (recovery finishes them)."""
    records_before: int = 0
    records_after: int = 0
    not_converted: list[NotConverted] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["not_converted"] = [dataclasses.asdict(n) for n in self.not_converted]
        return out

    def refusal(self, skip_damaged: bool) -> LogError | None:
        """The error the upgrade refuses with (None: it goes ahead), listing what is not
        converted: a transaction that would differ always refuses, damage unless skipped."""
        differ = [n for n in self.not_converted if not n.damaged]
        damaged = [n for n in self.not_converted if n.damaged]
        listed = "; ".join(str(n) for n in (differ or damaged)[:10])
        verb = "would be" if self.dry_run else "was"
        if differ:
            return LogError(
                f"{self.source}: {len(differ)} transaction(s) cannot be written in format 2 "
                f"saying the same, so nothing {verb} upgraded: {listed}"
            )
        if damaged and not skip_damaged:
            return LogCorruptError(
                f"{self.source}: {len(damaged)} damaged transaction(s) cannot be read back, so "
                f"nothing {verb} upgraded: {listed}. Settle them with the dtc-wal that wrote "
                "the log (0.1: `dtc verify`, `dtc repair`), or upgrade with --skip-damaged to "
                "leave them out (they stay in the format-1 original, kept as evidence)"
            )
        return None

    def summary(self) -> str:
        verb = "would convert" if self.dry_run else "converted"
        text = (
            f"{verb} {self.converted} of {self.transactions} transaction(s) "
            f"({self.unfinished} unfinished): {self.records_before} format-1 record(s) -> "
            f"{self.records_after} format-2 record(s)"
        )
        if self.not_converted:
            text += f"; {len(self.not_converted)} not converted"
        return text


def upgrade_log(
    path: str | os.PathLike[str],
    *,
    to: str | os.PathLike[str] | None = None,
    in_place: bool = False,
    dry_run: bool = False,
    skip_damaged: bool = False,
) -> UpgradeReport:
    """Convert the format-1 log at ``path`` to format 2 (module docstring: where, how).

    Give ``to`` (a new directory) or ``in_place``; a ``dry_run`` needs neither and writes
    nothing. Raises LogLockedError (a live coordinator holds the log), UnsupportedFormatError
    (not a format-1 log), LogCorruptError (damaged transactions, without ``skip_damaged``),
    LogError (a transaction would differ, or the new log did not verify: nothing was put in
    place), InvalidOptionError (bad ``to``/``in_place``).
    """
    source = Path(path)
    target = _check_options(source, to, in_place, dry_run)
    if not (source / "data.mdb").is_file():
        raise LogError(f"no log at {source}: give the directory a coordinator was opened on")
    lock = None
    if dry_run:
        holder = DirectoryLock.holder(source)
        if holder is not None:
            raise LogLockedError(
                f"log {source} is held by a live coordinator ({holder}); stop it before "
                "upgrading: it writes format 1 as it runs"
            )
    else:
        lock = DirectoryLock(source)
        lock.acquire()  # LogLockedError naming the live coordinator that holds it
    try:
        fmt = log_format(source)
        if fmt != 1:
            raise UnsupportedFormatError(
                f"the log at {source} is in format {fmt}, not format 1: there is nothing to "
                "upgrade" + (" (it is already format 2)" if fmt == 2 else "")
            )
        report = UpgradeReport(str(source), None, None, dry_run)
        converted = _convert_all(source, report)
        if dry_run:
            return report
        refusal = report.refusal(skip_damaged)
        if refusal is not None:
            raise refusal
        return _write(source, target, in_place, converted, report)
    finally:
        if lock is not None:
            lock.release()


def _check_options(
    source: Path, to: str | os.PathLike[str] | None, in_place: bool, dry_run: bool
) -> Path | None:
    if to is not None and in_place:
        raise InvalidOptionError("give --to DIR or --in-place, not both")
    if to is None:
        if not in_place and not dry_run:
            raise InvalidOptionError(
                "say where the format-2 log goes: --to DIR (a new directory; the original "
                "stays) or --in-place (the original is moved aside to LOG.format1-TIME)"
            )
        return None
    target = Path(to)
    if target.resolve() == source.resolve():
        raise InvalidOptionError(f"--to {target} is the log itself: use --in-place")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidOptionError(
            f"{target} exists and is not an empty directory: give a new directory for the "
            "format-2 log"
        )
    return target


def _read_format1(source: Path, report: UpgradeReport) -> list[tuple[str, list[LogRecord]]]:
    """Every readable transaction's records, in the order they began; the rest listed."""
    checked = verify_format1(source)
    bad: dict[str | None, list[str]] = {}
    for problem in checked.problems:
        bad.setdefault(problem.txid, []).append(f"{problem.check}: {problem}")
    found: list[tuple[int, str, list[LogRecord]]] = []
    with LogStore(source, readonly=True) as store, store.reader() as txn:
        with txn.cursor(db=store.txns) as cur:
            keys = [bytes(k) for k in cur.iternext(keys=True, values=False)]
        report.records_before = int(txn.stat(store.records)["entries"])
        for key in keys:
            try:
                txid = key.decode()
            except UnicodeDecodeError:
                continue  # verify reported it (a txns key that is not UTF-8)
            if txid in bad:
                continue
            try:
                summary = store.summary(txid, txn)
                assert summary is not None
                lsns: list[int] = summary["l"]
                found.append((lsns[0], txid, [store.record(lsn, txn) for lsn in lsns]))
            except (LogCorruptError, KeyError, IndexError, TypeError) as exc:
                bad.setdefault(txid, []).append(f"record: {exc}")
    report.transactions = len(found) + sum(1 for t in bad if t is not None)
    for owner, reasons in sorted(bad.items(), key=lambda item: item[0] or ""):
        report.not_converted.append(NotConverted(owner, "; ".join(reasons), damaged=True))
    found.sort()
    return [(txid, records) for _, txid, records in found]


def _convert_all(source: Path, report: UpgradeReport) -> list[tuple[Record, ...]]:
    out: list[tuple[Record, ...]] = []
    for txid, records in _read_format1(source, report):
        try:
            converted, tx = convert_checked(records)
        except NotConvertible as exc:
            report.not_converted.append(NotConverted(txid, str(exc), damaged=False))
            continue
        out.append(converted)
        report.converted += 1
        report.records_after += len(converted)
        report.unfinished += not tx.ended
    return out


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _sibling(source: Path, kind: str) -> Path:
    base = source.parent / f"{source.name}.{kind}-{_stamp()}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _write(
    source: Path,
    target: Path | None,
    in_place: bool,
    converted: list[tuple[Record, ...]],
    report: UpgradeReport,
) -> UpgradeReport:
    work = _sibling(source if target is None else target, "upgrade")
    try:
        with LmdbLog(work) as new:
            for start in range(0, len(converted), BATCH):
                batch = [r for tx in converted[start : start + BATCH] for r in tx]
                new.append(batch, durable=True)
        _check_written(work, converted)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if points.ARMED:
        points.hit("upgrade.before-swap")
    if target is not None:
        work.rename(target)  # onto a missing or empty directory: atomic
        _fsync_dir(target.parent)
        report.target, report.evidence = str(target), str(source)
        return report
    evidence = _sibling(source, "format1")
    if _exchange(source, work):
        _fsync_dir(source.parent)
        if points.ARMED:
            points.hit("upgrade.after-swap")
        work.rename(evidence)
    else:
        log.warning("no atomic exchange here: moving %s aside, then the new log in", source)
        source.rename(evidence)
        work.rename(source)
    _fsync_dir(source.parent)
    report.target, report.evidence = str(source), str(evidence)
    log.info("upgraded %s to format 2; the format-1 original is %s", source, evidence)
    return report


def _check_written(work: Path, converted: Sequence[tuple[Record, ...]]) -> None:
    """The new log verifies clean and holds exactly the converted records."""
    checked = verify_log(work)
    if not checked.ok:
        raise LogError(
            f"the new format-2 log did not verify ({checked.summary()}: "
            f"{'; '.join(str(p) for p in checked.problems[:5])}); nothing was put in place"
        )
    with LmdbLog(work, readonly=True) as new:
        for records in converted:
            stored = new.read(records[0].txid)
            if stored is None or stored.damage is not None or stored.records != records:
                raise LogError(
                    f"transaction {records[0].txid} reads back from the new format-2 log "
                    "differently from what was written; nothing was put in place"
                )
        if new.info().transactions != len(converted):
            raise LogError(
                "the new format-2 log holds other transactions; nothing was put in place"
            )


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise LogError(
        f"cannot exchange {a} and {b} ({os.strerror(code)}); the original log is unchanged "
        f"at {a}, the new one at {b}"
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
