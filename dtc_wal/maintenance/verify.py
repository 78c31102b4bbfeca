"""Check a format-2 log through the :class:`~dtc_wal.log.TransactionLog` interface
(``dtc verify`` on a format-2 directory).

The log is opened read-only (:class:`~dtc_wal.log.lmdb.LmdbLog`), so this is safe beside a
live coordinator, and read as one snapshot (:meth:`~dtc_wal.log.lmdb.LmdbLog.snapshot`), so
what the coordinator commits meanwhile is never seen half-way. What is checked:

1. every transaction's records read back (framing, CRC, sequence): damage is reported per
   transaction (``record``), naming the record's place in it;
2. each readable transaction folded with the protocol's own transition table
   (:meth:`dtc_wal.protocol.Transaction.apply`): a record out of order is reported with the
   txid, its place and type (``transition``);
3. the ``unfinished`` index lists exactly the transactions whose fold has not ended
   (``unfinished``);
4. no stored records are left that no index entry names (``record``: a lost index
   entry, named by the txid of their ``Opened`` when it reads back).

Nothing is written. :func:`log_format` tells format 1 from format 2 by the ``meta`` table.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from ..log.interface import StoredTransaction
from ..log.lmdb import LmdbLog
from ..log.lmdb.format import log_format
from ..protocol import OutOfOrderError, Transaction
from ..protocol.records import Opened, Record

__all__ = ["Problem", "Progress", "VerifyReport", "log_format", "verify_log"]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` with transactions checked so far."""


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: ``check`` is ``record`` (a record or index entry that does not read
    back), ``transition`` (the protocol refuses a record) or ``unfinished`` (the index
    disagrees with the folds); ``record`` is the record's place in its transaction (0 is
    ``Opened``; None when the problem is not one record's)."""

    check: str
    message: str
    txid: str | None = None
    record: int | None = None

    def __str__(self) -> str:
        where = []
        if self.txid is not None:
            where.append(f"transaction {self.txid}")
        if self.record is not None:
            where.append(f"record {self.record}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class VerifyReport:
    """The result of :func:`verify_log`; ``ok`` when no problem was found."""

    path: str
    format: int = 2
    records: int = 0
    transactions: int = 0
    unfinished: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "ok": self.ok,
            "records": self.records,
            "transactions": self.transactions,
            "unfinished": self.unfinished,
            "problems": [p.to_dict() for p in self.problems],
        }

    def summary(self) -> str:
        checked = (
            f"{self.records} record(s), {self.transactions} transaction(s) "
            f"({self.unfinished} unfinished), format {self.format}"
        )
        if self.ok:
            return f"ok: checked {checked}; no problems"
        return f"{len(self.problems)} problem(s) in {checked}"


def verify_log(path: str | os.PathLike[str], progress: Progress | None = None) -> VerifyReport:
    """Check the format-2 log at ``path`` read-only and return every problem found.

    Raises :class:`~dtc_wal.errors.LogError` only when the log cannot be opened at all
    (UnsupportedFormatError for a format-1 log: ``dtc upgrade`` converts it, checking it
    with :func:`dtc_wal.format1.verify.verify_log` first).
    """
    report = VerifyReport(path=str(path))
    # One snapshot for every table: read apart, a transaction opened (or ended) between the
    # txns scan and the unfinished scan would be reported as damage.
    with LmdbLog(path, readonly=True) as log, log.snapshot():
        total = log.info().transactions
        ended: dict[str, bool] = {}
        for done, stored in enumerate(log.transactions(), 1):
            report.transactions += 1
            report.records += len(stored.records)
            state = _check(stored, report.problems)
            if state is not None:
                ended[stored.txid] = state
            if progress is not None:
                progress(done, total)
        listed = {t.txid for t in log.unfinished()}
        strays = log.stray_records()
    report.unfinished = len(listed)
    for txid, is_ended in ended.items():
        if not is_ended and txid not in listed:
            report.problems.append(
                Problem(
                    "unfinished",
                    "has not ended but is missing from the unfinished index: start-up would "
                    "never recover it",
                    txid,
                )
            )
        elif is_ended and txid in listed:
            report.problems.append(
                Problem("unfinished", "has ended but is still in the unfinished index", txid)
            )
    for stray in strays:
        named = f"; its Opened names {stray.txid}" if stray.txid is not None else ""
        report.problems.append(
            Problem(
                "record",
                f"{stray.records} stored record(s) under key {stray.key.hex()} belong to no "
                f"transaction of the txns index{named}: recovery never reads them",
                stray.txid,
            )
        )
        report.records += stray.records
    damaged = {p.txid for p in report.problems if p.check in ("record", "transition")}
    for txid in sorted(listed - set(ended) - damaged):
        report.problems.append(
            Problem("unfinished", "the unfinished index lists it, but nothing else does", txid)
        )
    return report


def _check(stored: StoredTransaction, problems: list[Problem]) -> bool | None:
    """Fold one transaction; True/False: it has/has not ended; None: it is damaged."""
    txid = stored.txid
    if stored.damage is not None:
        problems.append(Problem("record", str(stored.damage), txid, stored.damage.seq))
        return None
    records = stored.records
    if not records or not isinstance(records[0], Opened):  # the reader reports these as damage
        problems.append(Problem("record", "its first record is not Opened", txid, 0))
        return None
    try:
        tx = Transaction.open(records[0])
    except OutOfOrderError as exc:
        problems.append(Problem("transition", str(exc), txid, 0))
        return None
    for seq, record in enumerate(records[1:], 1):
        try:
            tx.apply(record)
        except OutOfOrderError as exc:
            problems.append(Problem("transition", f"{_name(record)}: {exc}", txid, seq))
            return None
    return tx.ended


def _name(record: Record) -> str:
    return type(record).__name__
