"""One SQLite file per durable test participant, changed only by atomic check-and-sets.

Each participant or saga step *name* keeps ``<directory>/<name>.sqlite`` (WAL journal,
``synchronous=FULL``: a state change is on disk before the call returns), with one row per
transaction id. Every call is one ``BEGIN IMMEDIATE`` check-and-set
(:meth:`DurableFile._transition`), so concurrent threads and processes see each state
change atomically.

A call the protocol forbids (a state missing from the transition table) is written to the
``anomaly`` table and raises. While ``<directory>/<name>.unreachable`` exists
(:func:`set_unreachable`) every call raises ``ConnectionError`` and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..errors import InvalidOptionError

__all__ = [
    "APPLIED",
    "COMMITTED",
    "COMMITTED_ONE_PHASE",
    "COMMITTED_STATES",
    "COMPENSATED",
    "NULL_COMPENSATION",
    "NULL_ROLLBACK",
    "PREPARED",
    "REFUSED",
    "ROLLED_BACK",
    "ROLLED_BACK_PREPARED",
    "STATES",
    "UNDONE_STATES",
    "DurableFile",
    "db_path",
    "set_unreachable",
]

PREPARED = "prepared"
COMMITTED = "committed"
ROLLED_BACK = "rolled-back"
NULL_ROLLBACK = "null-rollback"
REFUSED = "refused"
APPLIED = "applied"
COMPENSATED = "compensated"
NULL_COMPENSATION = "null-compensation"
COMMITTED_ONE_PHASE = "committed-one-phase"
"""Committed by ``commit_one_phase``: the participant's own commit was the decision."""
ROLLED_BACK_PREPARED = "rolled-back-prepared"
"""Rolled back by the PreparedResource (``rollback_prepared``): an orphan's branch."""

STATES = (
    PREPARED,
    COMMITTED,
    ROLLED_BACK,
    NULL_ROLLBACK,
    REFUSED,
    APPLIED,
    COMPENSATED,
    NULL_COMPENSATION,
    COMMITTED_ONE_PHASE,
    ROLLED_BACK_PREPARED,
)
COMMITTED_STATES = frozenset({COMMITTED, APPLIED, COMMITTED_ONE_PHASE})
"""States meaning "this participant's part of the transaction took effect"."""
UNDONE_STATES = frozenset(
    {ROLLED_BACK, NULL_ROLLBACK, REFUSED, COMPENSATED, NULL_COMPENSATION, ROLLED_BACK_PREPARED}
)
"""States meaning "nothing of the transaction remains here"."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS txn (
    txid TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    calls INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failure (
    txid TEXT NOT NULL,
    call TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (txid, call)
);
CREATE TABLE IF NOT EXISTS anomaly (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    txid TEXT NOT NULL,
    call TEXT NOT NULL,
    state TEXT,
    at REAL NOT NULL
);
"""

_ready: set[Path] = set()
_ready_lock = threading.Lock()


def db_path(directory: str | os.PathLike[str], name: str) -> Path:
    """The SQLite file of participant ``name`` in ``directory``."""
    if not name or "/" in name or name.startswith("."):
        raise InvalidOptionError(f"participant name {name!r} cannot name a file")
    return Path(directory) / f"{name}.sqlite"


def _unreachable_flag(directory: str | os.PathLike[str], name: str) -> Path:
    return Path(directory) / f"{name}.unreachable"


def set_unreachable(directory: str | os.PathLike[str], name: str, unreachable: bool = True) -> None:
    """Make every call to participant ``name`` raise ``ConnectionError`` (or stop that)."""
    flag = _unreachable_flag(directory, name)
    if unreachable:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.touch()
    else:
        flag.unlink(missing_ok=True)


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode (we issue BEGIN ourselves), schema ensured."""
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        with _ready_lock:
            fresh = path not in _ready
        if fresh:
            conn.execute("PRAGMA journal_mode=WAL")
            # One transaction: a SIGKILL mid-schema (another thread's call may be killed
            # here) must not leave some tables made and others missing.
            conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
            with _ready_lock:
                _ready.add(path)
        yield conn
    finally:
        conn.close()


class DurableFile:
    """The state of participant ``name``, in ``<directory>/<name>.sqlite``: the base of the
    durable participants and saga steps."""

    def __init__(self, directory: str | os.PathLike[str], name: str, delay: float = 0.0) -> None:
        self.directory = Path(directory)
        self.name = name
        self.delay = delay
        self.path = db_path(directory, name)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _reachable(self, call: str, txid: str) -> None:
        if _unreachable_flag(self.directory, self.name).exists():
            raise ConnectionError(f"{self.name} is unreachable ({call} of {txid} not delivered)")

    def _count_failure(self, call: str, txid: str, limit: int) -> bool:
        """True (and one more failure counted on disk) while fewer than ``limit`` failed."""
        self._reachable(call, txid)
        with _connect(self.path) as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT n FROM failure WHERE txid = ? AND call = ?", (txid, call)
            ).fetchone()
            failed = row[0] if row else 0
            if failed < limit:
                conn.execute(
                    "INSERT OR REPLACE INTO failure (txid, call, n) VALUES (?, ?, ?)",
                    (txid, call, failed + 1),
                )
            conn.execute("COMMIT")
        return bool(failed < limit)

    def txids_in(self, state: str) -> list[str]:
        """The transaction ids this participant holds in ``state`` (none without a file)."""
        self._reachable("list", "*")
        if not self.path.exists():
            return []
        with _connect(self.path) as conn:
            rows = conn.execute("SELECT txid FROM txn WHERE state = ? ORDER BY txid", (state,))
            return [str(row[0]) for row in rows]

    def _transition(self, call: str, txid: str, table: Mapping[str | None, str | None]) -> str:
        """Apply ``table`` (state before -> state after, None = unchanged) atomically.

        A state missing from the table is an anomaly: recorded, then raised."""
        self._reachable(call, txid)
        with _connect(self.path) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT state FROM txn WHERE txid = ?", (txid,)).fetchone()
                before: str | None = row[0] if row else None
                if before not in table:
                    conn.execute(
                        "INSERT INTO anomaly (txid, call, state, at) VALUES (?, ?, ?, ?)",
                        (txid, call, before, time.time()),
                    )
                    conn.execute("COMMIT")
                    raise RuntimeError(
                        f"protocol violation at {self.name}: {call} of {txid} in state "
                        f"{before or 'none'}"
                    )
                after = table[before]
                if before is None and after is not None:
                    conn.execute(
                        "INSERT INTO txn (txid, state, calls, updated) VALUES (?, ?, 1, ?)",
                        (txid, after, time.time()),
                    )
                elif before is not None:
                    conn.execute(
                        "UPDATE txn SET state = ?, calls = calls + 1, updated = ? WHERE txid = ?",
                        (after or before, time.time(), txid),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return after or before or ""
