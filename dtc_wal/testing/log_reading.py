"""The crash harness's reading of a log: a :class:`LogSnapshot` of every transaction the
log holds, as :class:`Logged` (its state, its participants by name, those still pending),
and every problem its integrity check (``dtc verify``) finds. The invariants of
:mod:`.checks` are written over these.

:func:`dtc_wal.maintenance.verify.verify_log`, then every transaction read through
:class:`~dtc_wal.log.lmdb.LmdbLog` (read-only) and folded by the protocol's own transition
table (:func:`dtc_wal.protocol.fold`).

A transaction that does not read back or fold is left out of ``transactions``: the
integrity check reports it in ``problems``.
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import UnsupportedFormatError
from ..log.lmdb import LmdbLog, log_format
from ..maintenance import verify as verify2
from ..protocol import OutOfOrderError, Transaction, TxState, fold
from ..protocol.vocabulary import SETTLED

__all__ = ["LogSnapshot", "Logged", "read_log"]


@dataclasses.dataclass(frozen=True, slots=True)
class Logged:
    """One transaction as its log tells it."""

    txid: str
    state: TxState
    participants: tuple[str, ...]
    """Every participant (2PC) or step (saga), in order."""
    pending: tuple[str, ...]
    """Those whose outcome is not delivered yet."""


@dataclasses.dataclass(slots=True)
class LogSnapshot:
    """Every transaction in a (format-2) log, and every integrity problem found."""

    transactions: dict[str, Logged] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    records: int = 0


def read_log(path: str | os.PathLike[str]) -> LogSnapshot:
    """Verify the log at ``path`` and read every transaction in it (read-only).

    A log that is not in format 2 (or no log at all) is refused with
    UnsupportedFormatError. Do not call it while a coordinator in this process has the log
    open (LMDB forbids opening one environment twice in a process); another process may
    hold it.
    """
    found = log_format(path)
    if found != 2:
        raise UnsupportedFormatError(
            f"the log at {path} is in format {found}: the harness reads format 2 only "
            "(`dtc upgrade` converts a format-1 log)"
        )
    report = verify2.verify_log(path)
    snap = LogSnapshot(problems=[str(p) for p in report.problems], records=report.records)
    with LmdbLog(path, readonly=True) as log:
        for stored in log.transactions():
            if stored.damage is not None:
                continue  # reported by verify_log
            try:
                tx = fold(stored.records)
            except OutOfOrderError:
                continue  # reported by verify_log
            snap.transactions[stored.txid] = _logged(tx)
    return snap


def _logged(tx: Transaction) -> Logged:
    names = tuple(m.name for m in tx.members)
    pending = tuple(m.name for m in tx.members if m.state not in SETTLED)
    return Logged(tx.txid, tx.state, names, pending)
