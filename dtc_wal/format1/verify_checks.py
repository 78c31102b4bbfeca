"""The checks behind :func:`dtc_wal.format1.verify.verify_log`, run over one LMDB read
transaction: meta, records and transitions, the ``txns`` index, the ``unfinished`` index
(the module docstring of :mod:`dtc_wal.format1.verify` lists them)."""

from __future__ import annotations

from typing import Any

import lmdb
import msgpack

from ..errors import InvalidTransitionError, LogCorruptError
from .history import TransactionView
from .records import FORMAT_VERSION, decode_record, key_lsn, unframe, unpack
from .store import LogStore
from .verify_report import Problem, Progress, VerifyReport

__all__ = ["LogVerifier"]

_PROGRESS_EVERY = 1024
_FINISHED = ("committed", "aborted")
_SUMMARY_FIELDS = (("m", "mode"), ("c", "created time"), ("u", "updated time"))


class LogVerifier:
    """Checks one snapshot of a log; :meth:`run` returns the report."""

    def __init__(self, store: LogStore, txn: lmdb.Transaction, progress: Progress | None) -> None:
        self.store = store
        self.txn = txn
        self.progress = progress
        self.report = VerifyReport(path=str(store.path))
        self.problems: list[Problem] = []
        self.views: dict[str, TransactionView] = {}
        self.broken: set[str] = set()  # a transition was refused: later checks are moot
        self.damaged: dict[int, Problem] = {}  # LSN -> undecodable record
        self.damaged_owner: dict[int, str] = {}  # LSN -> txid, from the index
        self.meta_last: int | None = None

    def problem(
        self, check: str, message: str, lsn: int | None = None, txid: str | None = None
    ) -> None:
        self.problems.append(Problem(check, message, lsn, txid))

    def run(self) -> VerifyReport:
        self.check_meta_format()
        self.check_records()
        self.check_meta_last_lsn()
        index = self.check_index()
        self.check_unfinished(index)
        self.report.problems = self.ordered_problems()
        return self.report

    # -- meta --------------------------------------------------------------------------

    def _meta_int(self, key: bytes) -> int | None:
        raw = self.txn.get(key, db=self.store.meta)
        if raw is None:
            return None
        if len(raw) != 8:
            self.problem("meta", f"meta/{key.decode()} is {len(raw)} bytes, expected 8")
            return None
        return key_lsn(bytes(raw))

    def check_meta_format(self) -> None:
        fmt = self._meta_int(b"format")
        if fmt is None:
            self.problem("meta", "meta/format is missing or unreadable")
        elif fmt != FORMAT_VERSION:  # LogStore refuses to open these; kept for completeness
            self.problem("meta", f"meta/format is {fmt}, this build reads {FORMAT_VERSION}")
        self.meta_last = self._meta_int(b"last-lsn")

    def check_meta_last_lsn(self) -> None:
        highest = self.report.last_lsn
        if self.meta_last is None:
            if self.report.records:
                self.problem(
                    "meta",
                    f"meta/last-lsn is missing while records exist (highest LSN {highest}); "
                    "a writer could reuse LSNs after compaction",
                    highest,
                )
        elif self.meta_last < highest:
            self.problem(
                "meta",
                f"meta/last-lsn is {self.meta_last}, below the highest record's LSN {highest}",
                highest,
            )
        self.report.last_lsn = max(highest, self.meta_last or 0)

    # -- records and transitions -----------------------------------------------------------

    def check_records(self) -> None:
        total = int(self.txn.stat(self.store.records)["entries"])
        done = 0
        with self.txn.cursor(db=self.store.records) as cur:
            for raw_key, raw_value in cur:
                done += 1
                self.check_record(bytes(raw_key), bytes(raw_value))
                if self.progress is not None and done % _PROGRESS_EVERY == 0:
                    self.progress(done, total)
        self.report.records = done
        if self.progress is not None:
            self.progress(done, max(total, done))

    def check_record(self, key: bytes, value: bytes) -> None:
        if len(key) != 8:
            self.problem("order", f"record key {key.hex()} is not an 8-byte LSN")
            return
        lsn = key_lsn(key)
        # LMDB keeps keys sorted and 8-byte big-endian keys sort numerically, so LSNs are
        # strictly increasing by construction; only the reserved LSN 0 can be wrong here.
        if lsn == 0:
            self.problem("order", "LSN 0 is reserved: LSNs start at 1", lsn)
        self.report.last_lsn = max(self.report.last_lsn, lsn)
        try:
            record = decode_record(value, lsn)
        except LogCorruptError as exc:
            self.damaged[lsn] = Problem("record", str(exc), lsn)
            return
        txid = record.txid
        if txid in self.broken:
            return
        view = self.views.get(txid)
        try:
            if view is None:
                self.views[txid] = TransactionView.begin(record, lsn)
            else:
                view.apply(record, lsn)
        except InvalidTransitionError as exc:
            self.problem("transition", str(exc), lsn, txid)
            self.broken.add(txid)

    # -- the txns index ----------------------------------------------------------------------

    def check_index(self) -> set[str]:
        """Compare every summary with the replayed records; return the indexed txids."""
        indexed: set[str] = set()
        with self.txn.cursor(db=self.store.txns) as cur:
            for raw_key, raw_value in cur:
                try:
                    txid = bytes(raw_key).decode("utf-8")
                except UnicodeDecodeError:
                    self.problem("index", f"txns key {bytes(raw_key).hex()} is not UTF-8")
                    continue
                indexed.add(txid)
                try:
                    summary = unpack(unframe(bytes(raw_value), what=f"summary of {txid}"))
                    if not isinstance(summary, dict):
                        raise LogCorruptError(f"summary of {txid} is not a map")
                except (LogCorruptError, ValueError, msgpack.UnpackException) as exc:
                    self.problem("index", str(exc), txid=txid)
                    continue
                self.check_summary(txid, summary)
        for txid, view in self.views.items():
            if txid not in indexed:
                self.problem(
                    "index",
                    f"has records (LSNs {_lsn_list(view.lsns)}) but no entry in the txns "
                    "index: start-up and `dtc show` cannot find it",
                    view.lsns[0],
                    txid,
                )
        for txid in sorted(self.broken - indexed - set(self.views)):
            self.problem("index", "has records but no entry in the txns index", txid=txid)
        return indexed

    def check_summary(self, txid: str, summary: dict[str, Any]) -> None:
        lsns = summary.get("l")
        if isinstance(lsns, list):
            for lsn in lsns:
                if isinstance(lsn, int) and lsn in self.damaged:
                    self.damaged_owner[lsn] = txid
            if any(isinstance(n, int) and n in self.damaged for n in lsns):
                return  # the damage is the problem; its consequences are noise
        if txid in self.broken:
            return
        view = self.views.get(txid)
        if view is None:
            self.problem(
                "index",
                f"the txns index lists it (LSNs {_lsn_list(lsns)}) but the log holds no "
                "record of it",
                txid=txid,
            )
            return
        expected = view.summary()
        first = view.lsns[0]
        if summary.get("s") != expected["s"]:
            self.problem(
                "index",
                f"the txns index says state {summary.get('s')!r}, its records say "
                f"{expected['s']!r}",
                first,
                txid,
            )
        if lsns != expected["l"]:
            have = set(view.lsns)
            listed = {n for n in lsns if isinstance(n, int)} if isinstance(lsns, list) else set()
            details = []
            if listed - have:
                details.append(f"missing records at LSN {_lsn_list(sorted(listed - have))}")
            if have - listed:
                extra = sorted(have - listed)
                details.append(f"records not in the index at LSN {_lsn_list(extra)}")
            self.problem(
                "index",
                f"the txns index lists LSNs {_lsn_list(lsns)}, the records are at "
                f"{_lsn_list(view.lsns)}" + (f" ({'; '.join(details)})" if details else ""),
                min(listed - have) if listed - have else first,
                txid,
            )
        for key, label in _SUMMARY_FIELDS:
            if summary.get(key) != expected[key]:
                self.problem(
                    "index",
                    f"the txns index says {label} {summary.get(key)!r}, its records say "
                    f"{expected[key]!r}",
                    first,
                    txid,
                )
        if summary.get("p") != expected["p"]:
            self.problem(
                "index",
                f"the txns index says participants {summary.get('p')!r}, its records say "
                f"{expected['p']!r}",
                first,
                txid,
            )

    # -- the unfinished index ------------------------------------------------------------------

    def check_unfinished(self, indexed: set[str]) -> None:
        listed: set[str] = set()
        with self.txn.cursor(db=self.store.unfinished_db) as cur:
            for raw_key in cur.iternext(keys=True, values=False):
                try:
                    listed.add(bytes(raw_key).decode("utf-8"))
                except UnicodeDecodeError:
                    self.problem("unfinished", f"key {bytes(raw_key).hex()} is not UTF-8")
        self.report.unfinished = len(listed)
        self.report.transactions = len(indexed)
        skip = self.broken | set(self.damaged_owner.values())
        for txid, view in self.views.items():
            if txid in skip:
                continue
            finished = view.state.value in _FINISHED
            if not finished and txid not in listed:
                self.problem(
                    "unfinished",
                    f"is {view.state.value} but missing from the unfinished index: start-up "
                    "would never recover it",
                    view.lsns[0],
                    txid,
                )
            elif finished and txid in listed:
                self.problem(
                    "unfinished",
                    f"is {view.state.value} but still listed in the unfinished index",
                    view.lsns[-1],
                    txid,
                )
        for txid in sorted(listed - set(self.views) - skip - indexed):
            self.problem(
                "unfinished", "the unfinished index lists it, but nothing else does", txid=txid
            )

    # -- output --------------------------------------------------------------------------------

    def ordered_problems(self) -> list[Problem]:
        owners = set(self.damaged_owner.values())
        # A refused transition right after a damaged record of the same transaction is
        # the damage's consequence (a missing BEGUN or PREPARED), not a second problem.
        out = [p for p in self.problems if not (p.check == "transition" and p.txid in owners)]
        for lsn, damage in self.damaged.items():
            owner = self.damaged_owner.get(lsn)
            message = damage.message
            if owner is None:
                message += " (no transaction in the txns index names this LSN)"
            out.append(Problem("record", message, lsn, owner))
        return sorted(
            out,
            key=lambda p: (p.lsn is None, p.lsn or 0, p.txid or "", p.check, p.message),
        )


def _lsn_list(lsns: object) -> str:
    if not isinstance(lsns, list):
        return repr(lsns)
    if len(lsns) > 12:
        head = ", ".join(str(n) for n in lsns[:10])
        return f"[{head}, ... {len(lsns) - 10} more]"
    return "[" + ", ".join(str(n) for n in lsns) + "]"
