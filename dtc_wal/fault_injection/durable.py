"""Durable test participants: their state lives on disk, so a checker can read the truth
after a SIGKILL of the coordinator (or of themselves).

Each participant or saga step *name* keeps one SQLite file, ``<directory>/<name>.sqlite``
(WAL journal, ``synchronous=FULL``: a state change is on disk before the call returns), with
one row per transaction id. Every call is one ``BEGIN IMMEDIATE`` check-and-set, so
concurrent threads and processes see each state change atomically.

2PC participant (:class:`DurableParticipant`) -- states and what each call does:

==========  ===================  ============================================
call        state before         result
==========  ===================  ============================================
prepare     none                 ``prepared`` (or ``refused`` when it votes no)
prepare     prepared/committed   nothing: yes again
prepare     rolled back/refused  VoteNo (a prepare that arrives after rollback)
commit      prepared             ``committed``
commit      committed            nothing (duplicate)
rollback    none                 ``null-rollback`` (it never prepared)
rollback    prepared             ``rolled-back``
rollback    rolled back/refused  nothing (duplicate)
==========  ===================  ============================================

Saga step (:class:`DurableStep`): ``action`` records ``applied`` (idempotent; VoteNo after a
compensation), ``compensate`` records ``compensated``, or ``null-compensation`` when the
action never ran.

A call the protocol forbids -- commit of a transaction not prepared, rollback or
compensation after commit... -- is written to the ``anomaly`` table and raises; the checker
reports every anomaly as a coordinator bug. While ``<directory>/<name>.unreachable`` exists
(:func:`set_unreachable`) every call raises ``ConnectionError`` and changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import VoteNo
from ..registry import ParticipantRegistry

__all__ = [
    "COMMITTED_STATES",
    "Anomaly",
    "DurableParticipant",
    "DurableStep",
    "ParticipantStates",
    "read_states",
    "register_durable",
    "set_unreachable",
]

PARTICIPANT_FACTORY = "durable"

PREPARED = "prepared"
COMMITTED = "committed"
ROLLED_BACK = "rolled-back"
NULL_ROLLBACK = "null-rollback"
REFUSED = "refused"
APPLIED = "applied"
COMPENSATED = "compensated"
NULL_COMPENSATION = "null-compensation"

COMMITTED_STATES = frozenset({COMMITTED, APPLIED})
"""States meaning "this participant's part of the transaction took effect"."""
UNDONE_STATES = frozenset({ROLLED_BACK, NULL_ROLLBACK, REFUSED, COMPENSATED, NULL_COMPENSATION})
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


def _db_path(directory: str | os.PathLike[str], name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"participant name {name!r} cannot name a file")
    return Path(directory) / f"{name}.sqlite"


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
            conn.executescript(_SCHEMA)
            with _ready_lock:
                _ready.add(path)
        yield conn
    finally:
        conn.close()


class _Durable:
    def __init__(self, directory: str | os.PathLike[str], name: str, delay: float = 0.0) -> None:
        self.directory = Path(directory)
        self.name = name
        self.delay = delay
        self.path = _db_path(directory, name)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _reachable(self, call: str, txid: str) -> None:
        if (self.directory / f"{self.name}.unreachable").exists():
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


AFTER_LIMIT = 5.0


class DurableParticipant(_Durable):
    """A 2PC participant with its state in ``<directory>/<name>.sqlite``.

    ``vote_no`` refuses every prepare; ``delay`` sleeps before each prepare; ``after`` names
    participants (in the same directory) whose prepare of the transaction must be on disk
    before this one answers -- so they vote first (waits at most ``AFTER_LIMIT`` seconds,
    then answers anyway). ``fail_commits``: the first that many
    commit calls for each transaction raise ``ConnectionError`` (counted on disk, across
    objects and processes: a participant that comes back).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str,
        *,
        vote_no: bool = False,
        delay: float = 0.0,
        fail_commits: int = 0,
        after: Iterable[str] = (),
    ) -> None:
        super().__init__(directory, name, delay)
        self.vote_no = vote_no
        self.after = tuple(after)
        self.fail_commits = fail_commits

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.after:
            self._wait_for(self.after, transaction_id)
        if self.vote_no:
            self._transition(
                "prepare",
                transaction_id,
                {None: REFUSED, REFUSED: None, ROLLED_BACK: None, NULL_ROLLBACK: None},
            )
            raise VoteNo(f"{self.name} votes no (vote_no=True)")
        state = self._transition(
            "prepare",
            transaction_id,
            {
                None: PREPARED,
                PREPARED: None,
                COMMITTED: None,
                ROLLED_BACK: None,
                NULL_ROLLBACK: None,
                REFUSED: None,
            },
        )
        if state in UNDONE_STATES:
            raise VoteNo(f"{self.name}: {transaction_id} was already rolled back ({state})")

    def _wait_for(self, names: tuple[str, ...], txid: str) -> None:
        deadline = time.monotonic() + AFTER_LIMIT
        while time.monotonic() < deadline:
            try:
                held = read_states(self.directory, names).states.get(txid, {})
            except sqlite3.Error:  # a file still being created: look again
                held = {}
            if all(name in held for name in names):
                time.sleep(0.01)  # and let their prepare calls return to the coordinator
                return
            time.sleep(0.005)

    def commit(self, transaction_id: str) -> None:
        if self.fail_commits and self._count_failure("commit", transaction_id, self.fail_commits):
            raise ConnectionError(f"{self.name}: commit of {transaction_id} failed (fail_commits)")
        self._transition("commit", transaction_id, {PREPARED: COMMITTED, COMMITTED: None})

    def rollback(self, transaction_id: str) -> None:
        self._transition(
            "rollback",
            transaction_id,
            {
                None: NULL_ROLLBACK,
                PREPARED: ROLLED_BACK,
                ROLLED_BACK: None,
                NULL_ROLLBACK: None,
                REFUSED: None,
            },
        )


class DurableStep(_Durable):
    """A saga step with its state in ``<directory>/<name>.sqlite``; ``fail`` makes every
    action raise (after ``delay`` seconds) without doing anything."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str,
        *,
        fail: bool = False,
        delay: float = 0.0,
    ) -> None:
        super().__init__(directory, name, delay)
        self.fail = fail

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)
        self._reachable("action", transaction_id)
        if self.fail:
            raise RuntimeError(f"{self.name}: action fails (fail=True)")
        state = self._transition(
            "action",
            transaction_id,
            {None: APPLIED, APPLIED: None, COMPENSATED: None, NULL_COMPENSATION: None},
        )
        if state in UNDONE_STATES:
            raise VoteNo(f"{self.name}: {transaction_id} was already compensated ({state})")

    def compensate(self, transaction_id: str) -> None:
        self._transition(
            "compensate",
            transaction_id,
            {
                None: NULL_COMPENSATION,
                APPLIED: COMPENSATED,
                COMPENSATED: None,
                NULL_COMPENSATION: None,
            },
        )


def register_durable(
    registry: ParticipantRegistry,
    directory: str | os.PathLike[str],
    *,
    steps: Iterable[str] = (),
    participant_factory: str | None = PARTICIPANT_FACTORY,
) -> ParticipantRegistry:
    """Register the durable factories, all keeping their files in ``directory``.

    ``participant_factory`` (default ``"durable"``; None: none) builds a
    :class:`DurableParticipant` from params ``{"name": ..., **options}`` (its keyword
    arguments). A saga step is logged under its factory's name, so each name in ``steps``
    gets its own factory building a :class:`DurableStep` of that name (params ``fail``,
    ``delay``).
    Returns ``registry``.
    """
    path = Path(directory)

    def participant(name: str, **options: Any) -> DurableParticipant:
        return DurableParticipant(path, name, **options)

    if participant_factory is not None:
        registry.register(participant_factory, participant)
    for step in steps:
        registry.register(step, _step_factory(path, step))
    return registry


def _step_factory(path: Path, name: str) -> Callable[..., DurableStep]:
    def step(**options: Any) -> DurableStep:
        return DurableStep(path, name, **options)

    return step


def set_unreachable(directory: str | os.PathLike[str], name: str, unreachable: bool = True) -> None:
    """Make every call to participant ``name`` raise ``ConnectionError`` (or stop that)."""
    flag = Path(directory) / f"{name}.unreachable"
    if unreachable:
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.touch()
    else:
        flag.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Anomaly:
    participant: str
    txid: str
    call: str
    state: str | None

    def __str__(self) -> str:
        return f"{self.participant}: {self.call} of {self.txid} in state {self.state or 'none'}"


@dataclasses.dataclass(slots=True)
class ParticipantStates:
    """What the participants in one directory hold: ``states[txid][participant]``."""

    states: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    anomalies: list[Anomaly] = dataclasses.field(default_factory=list)


def read_states(
    directory: str | os.PathLike[str], names: Iterable[str] | None = None
) -> ParticipantStates:
    """Read every participant file in ``directory`` (or those of ``names``), e.g. for the
    checker after a kill."""
    out = ParticipantStates()
    if names is None:
        paths = sorted(Path(directory).glob("*.sqlite"))
    else:
        paths = [p for p in (_db_path(directory, n) for n in names) if p.exists()]
    for path in paths:
        name = path.stem
        conn = sqlite3.connect(path, timeout=60.0)  # read-write: may replay a dead writer's WAL
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "txn" not in tables:
                continue
            for txid, state in conn.execute("SELECT txid, state FROM txn"):
                out.states.setdefault(txid, {})[name] = state
            for txid, call, state in conn.execute("SELECT txid, call, state FROM anomaly"):
                out.anomalies.append(Anomaly(name, txid, call, state))
        finally:
            conn.close()
    return out
