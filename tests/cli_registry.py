"""A participant registry for the CLI tests, and scripts that leave logs behind.

``dtc recover --registry cli_registry:registry`` (with ``tests/`` on PYTHONPATH) or
``--registry tests.cli_registry:registry`` (from the repository root) imports it.
Participants write one line per call to ``<journal>/<name>.log``, so a test -- or a later
process such as ``dtc recover`` -- can see what each one was told:

    prepare <txid>
    commit <txid>
    rollback <txid>

Run as a script it drives a coordinator in its own process (the tests start it with
``subprocess``)::

    python tests/cli_registry.py crash LOG JOURNAL     # one 2PC commit (crash it, below)
    python tests/cli_registry.py hold LOG JOURNAL      # a live coordinator, see hold()
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lmdb

from dtc_wal import Clock, ParticipantRegistry, TransactionCoordinator
from dtc_wal.errors import CommitIncompleteError, DtcError, TransactionAborted, VoteNo
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol.records import Decided, MemberSpec, Mode, Opened, Outcome, Vote
from dtc_wal.testing.crash_at import command


class FileParticipant:
    """A 2PC participant journaling to ``<journal>/<name>.log``.

    ``fail``: ``"prepare"`` votes no, ``"commit"`` / ``"rollback"`` raise
    ``ConnectionError`` (transient: retried, then left to recovery). ``gate``: prepare
    writes its line, then waits until the file ``gate`` exists.
    """

    def __init__(
        self, journal: str, name: str, fail: str | None = None, gate: str | None = None
    ) -> None:
        self.journal = Path(journal)
        self.name = name
        self.fail = fail
        self.gate = Path(gate) if gate else None

    def _note(self, what: str, txid: str) -> None:
        self.journal.mkdir(parents=True, exist_ok=True)
        with open(self.journal / f"{self.name}.log", "a", encoding="utf-8") as f:
            f.write(f"{what} {txid}\n")

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self._note("prepare", transaction_id)
        if self.gate is not None:
            while not self.gate.exists():
                time.sleep(0.01)
        if self.fail == "prepare":
            raise VoteNo(f"{self.name} refuses")

    def commit(self, transaction_id: str) -> None:
        if self.fail == "commit":
            raise ConnectionError(f"{self.name} is unreachable")
        self._note("commit", transaction_id)

    def rollback(self, transaction_id: str) -> None:
        if self.fail == "rollback":
            raise ConnectionError(f"{self.name} is unreachable")
        self._note("rollback", transaction_id)


registry = ParticipantRegistry()
registry.register("file", FileParticipant)


def make_registry() -> ParticipantRegistry:
    """The same registry, for ``--registry cli_registry:make_registry`` (a function)."""
    return registry


not_a_registry = 42


def journal_lines(journal: Path, name: str) -> list[str]:
    path = journal / f"{name}.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _enlist(
    coord: TransactionCoordinator, txid: str, journal: str, name: str, **extra: Any
) -> None:
    params = {"journal": journal, "name": name, **extra}
    coord.enlist_participant(txid, "file", name=name, params=params)


def crash(log: str, journal: str) -> None:
    """Commit one 2PC transaction of two participants; print its txid first.

    Under ``python -m dtc_wal.testing.crash_at decision.after-commit-log`` the process
    SIGKILLs itself once the commit decision is durable, before any participant hears commit.
    """
    coord = TransactionCoordinator(log, registry=registry, recovery_interval=None)
    txid = coord.begin_transaction()
    _enlist(coord, txid, journal, "payment")
    _enlist(coord, txid, journal, "stock")
    print(txid, flush=True)
    coord.commit_transaction(txid, {"order": 17, "blob": b"\x00\xffraw"})
    coord.close()


def crash_command(log: Path, journal: Path, point: str = "decision.after-commit-log") -> list[str]:
    """The command line of :func:`crash` as a process SIGKILLed at ``point``."""
    return command(point, __file__, "crash", str(log), str(journal))


def hold(log: str, journal: str) -> None:
    """A live coordinator that keeps the log while the test inspects it.

    Leaves: two committed transactions, one aborted (a no vote), one decided-commit whose
    participant is unreachable (in doubt), and one active transaction blocked in prepare.
    A background thread keeps committing transactions (``churn``) until stdin closes, so
    readers see a log that is being written. Prints one JSON line with the txids, then
    waits for stdin to close, opens the gate and closes the coordinator.
    """
    gate = Path(journal) / "gate"
    coord = TransactionCoordinator(
        log,
        registry=registry,
        recovery_interval=None,
        zombie_timeout=None,
        prepare_timeout=None,
        max_retries=1,
        backoff_initial=0.001,
    )
    txids: dict[str, Any] = {"committed": [], "churn": 0}
    for _ in range(2):
        txid = coord.begin_transaction()
        _enlist(coord, txid, journal, "payment")
        coord.commit_transaction(txid)
        txids["committed"].append(txid)
    txid = coord.begin_transaction()
    _enlist(coord, txid, journal, "payment")
    _enlist(coord, txid, journal, "fraud-check", fail="prepare")
    try:
        coord.commit_transaction(txid)
    except DtcError:
        txids["aborted"] = txid
    txid = coord.begin_transaction()
    _enlist(coord, txid, journal, "payment")
    _enlist(coord, txid, journal, "warehouse", fail="commit")
    try:
        coord.commit_transaction(txid)
    except CommitIncompleteError:
        txids["in_doubt"] = txid
    blocked = coord.begin_transaction()
    _enlist(coord, blocked, journal, "slow", gate=str(gate))
    blocker = threading.Thread(target=coord.commit_transaction, args=(blocked,))
    blocker.start()
    prepared = Path(journal) / "slow.log"
    while not prepared.exists():
        time.sleep(0.01)
    txids["active"] = blocked
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            t = coord.begin_transaction()
            _enlist(coord, t, journal, "churn")
            coord.commit_transaction(t)
            txids["churn"] += 1
            time.sleep(0.005)

    churner = threading.Thread(target=churn)
    churner.start()
    print(json.dumps(txids), flush=True)
    sys.stdin.read()
    stop.set()
    churner.join()
    gate.touch()
    blocker.join()
    coord.close()
    print(json.dumps({"churn": txids["churn"]}), flush=True)


# -- logs for in-process tests (no coordinator may stay open: LMDB allows one per process) --


def populate(log: Path, journal: Path, clock: Clock | None = None) -> dict[str, str]:
    """Leave a log with one transaction of each kind; return their txids by kind.

    committed (2PC, two participants), aborted (a no vote), in_doubt (decided commit, the
    warehouse is unreachable), saga (a committed saga of callables).
    """
    ids: dict[str, str] = {}
    coord = TransactionCoordinator(
        log,
        registry=registry,
        clock=clock,
        recovery_interval=None,
        zombie_timeout=None,
        max_retries=1,
        backoff_initial=0.001,
    )
    with coord:
        j = str(journal)
        ids["committed"] = txid = coord.begin_transaction()
        _enlist(coord, txid, j, "payment")
        _enlist(coord, txid, j, "stock")
        coord.commit_transaction(txid, {"order": 1, "note": b"\x00\x01"})
        ids["aborted"] = txid = coord.begin_transaction()
        _enlist(coord, txid, j, "payment")
        _enlist(coord, txid, j, "fraud-check", fail="prepare")
        try:
            coord.commit_transaction(txid)
        except TransactionAborted:
            pass
        else:
            raise AssertionError("the fraud check votes no: the commit must abort")
        ids["in_doubt"] = txid = coord.begin_transaction()
        _enlist(coord, txid, j, "payment")
        _enlist(coord, txid, j, "warehouse", fail="commit")
        try:
            coord.commit_transaction(txid)
        except CommitIncompleteError:
            pass
        else:
            raise AssertionError("the warehouse is unreachable: the commit stays incomplete")
        ids["saga"] = txid = coord.begin_transaction()
        coord.register_participant(txid, "reserve", lambda t, d: None, lambda t: None)
        coord.register_participant(txid, "charge", lambda t, d: None, lambda t: None)
        coord.commit_transaction(txid)
    return ids


def append_unfinished(log: Path, txid: str, journal: Path, *, decide: bool, **params: Any) -> str:
    """Write an unfinished 2PC transaction of two "file" participants straight to the log
    (format 2): ``Opened`` only (as if its coordinator died before deciding: both were
    asked to prepare, in format 2 the votes are logged with the decision) or ``Opened`` +
    ``Decided`` commit with both votes yes (died right after deciding). ``params`` go to
    the ``payment`` participant (e.g. ``fail``)."""
    now = time.time()
    members = tuple(
        MemberSpec(name, "file", {"journal": str(journal), "name": name, **extra})
        for name, extra in (("payment", params), ("stock", {}))
    )
    records: list[Any] = [Opened(txid, now, Mode.TWO_PHASE, members)]
    if decide:
        records.append(Decided(txid, now, Outcome.COMMIT, ((0, Vote.YES), (1, Vote.YES))))
    with LmdbLog(log) as opened:
        opened.append(records)
    return txid


@contextlib.contextmanager
def raw_tables(log: Path) -> Iterator[tuple[lmdb.Transaction, dict[str, Any]]]:
    """A write transaction on the log's LMDB tables, bypassing dtc-wal: for damaging a
    log on purpose. Yields ``(txn, {"records": db, "txns": db, "unfinished": db,
    "meta": db})``; commits at the end."""
    env = lmdb.open(str(log), max_dbs=8, subdir=True)
    try:
        names = ("records", "txns", "unfinished", "meta")
        dbs = {name: env.open_db(name.encode()) for name in names}
        with env.begin(write=True) as txn:
            yield txn, dbs
    finally:
        env.close()


if __name__ == "__main__":
    {"crash": crash, "hold": hold}[sys.argv[1]](sys.argv[2], sys.argv[3])
