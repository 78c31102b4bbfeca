"""What :func:`dtc_wal.format1.verify.verify_log` returns -- a :class:`VerifyReport` listing
every :class:`Problem` -- and the :data:`Progress` callback it reports to."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["Problem", "Progress", "VerifyReport"]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while records are checked."""


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the log, naming the record (LSN) and transaction it concerns.

    ``check`` is the check that found it: ``record`` (framing, CRC, version, payload),
    ``order`` (keys and LSNs), ``transition`` (the state order), ``index`` (the ``txns``
    table), ``unfinished`` (the ``unfinished`` table) or ``meta``.
    """

    check: str
    message: str
    lsn: int | None = None
    txid: str | None = None

    def __str__(self) -> str:
        where = []
        if self.lsn is not None:
            where.append(f"LSN {self.lsn}")
        if self.txid is not None:
            where.append(f"transaction {self.txid}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class VerifyReport:
    """The result of :func:`verify_log`; ``ok`` when no problem was found."""

    path: str
    records: int = 0
    transactions: int = 0
    unfinished: int = 0
    last_lsn: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "records": self.records,
            "transactions": self.transactions,
            "unfinished": self.unfinished,
            "last_lsn": self.last_lsn,
            "problems": [p.to_dict() for p in self.problems],
        }

    def summary(self) -> str:
        checked = (
            f"{self.records} record(s), {self.transactions} transaction(s) "
            f"({self.unfinished} unfinished), last LSN {self.last_lsn}"
        )
        if self.ok:
            return f"ok: checked {checked}; no problems"
        return f"{len(self.problems)} problem(s) in {checked}"
