"""Recovery against the faults of issue 3: an unreachable participant, a missing factory,
a full disk, a damaged record, stale LMDB readers of a killed process, zombie transactions.

Every test kills or drives real processes and a real LMDB log; participants keep their
state in their own SQLite files (dtc_wal.testing.durable).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from helpers import wait_until

from dtc_wal import (
    ManualClock,
    ParticipantRegistry,
    TransactionAborted,
    TransactionCoordinator,
    TxState,
)
from dtc_wal.errors import (
    LogFullError,
    LogLockedError,
    TransactionDamagedError,
    TransactionStateError,
    UnknownTransactionError,
)
from dtc_wal.log import Damage
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN, encode, frame
from dtc_wal.log.lmdb.repair import drop_transaction
from dtc_wal.maintenance.verify import verify_log
from dtc_wal.protocol.records import Acked, Decided, Failed, MemberState, Opened, Record
from dtc_wal.testing.durable import (
    COMMITTED,
    NULL_ROLLBACK,
    PREPARED,
    ROLLED_BACK,
    DurableParticipant,
    read_states,
    register_durable,
    set_unreachable,
)
from dtc_wal.testing.harness import Case, workload_command
from dtc_wal.testing.workload import coordinator_options, make_registry

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


@pytest.fixture
def case(tmp_path: Path) -> Case:
    return Case.create(tmp_path)


@pytest.fixture
def opened() -> Iterator[list[TransactionCoordinator]]:
    """Coordinators opened by a test; closed at its end, also when it fails."""
    coordinators: list[TransactionCoordinator] = []
    yield coordinators
    for coord in reversed(coordinators):
        coord.close()


def _open(
    case: Case, opened: list[TransactionCoordinator], **options: object
) -> TransactionCoordinator:
    coord = TransactionCoordinator(
        case.log, registry=make_registry(case.state), **{**coordinator_options(), **options}
    )
    opened.append(coord)
    return coord


def _killed(case: Case, scenario: str, point: str) -> str:
    """Run one transaction, killed at ``point``; return its txid (the only one in the log)."""
    run = case.run(scenario, crash_at=point)
    assert run.killed_by_sigkill, run.describe()
    env = lmdb.open(str(case.log), max_dbs=8, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            txids = [bytes(k).decode() for k, _ in txn.cursor(db=env.open_db(b"txns", txn=txn))]
    finally:
        env.close()
    assert len(txids) == 1
    return txids[0]


# -- in doubt, then finished by the background loop ----------------------------------------


def test_unreachable_participant_is_in_doubt_then_finished_without_restart(
    case: Case, opened: list[TransactionCoordinator]
) -> None:
    txid = _killed(case, "2pc-commit", "decision.after-commit-log")
    set_unreachable(case.state, "p1")
    coord = _open(case, opened, recovery_interval=0.05)

    report = coord.last_recovery_report
    assert [(d.txid, d.participant, d.outcome) for d in report.in_doubt] == [(txid, "p1", "commit")]
    assert "ConnectionError" in (report.in_doubt[0].error or "")
    assert report.in_doubt[0].attempts >= 1
    assert [(d.txid, d.participant) for d in coord.in_doubt()] == [(txid, "p1")]
    assert coord.state(txid) is TxState.DECIDED_COMMIT
    held = read_states(case.state).states[txid]
    assert held == {"p0": COMMITTED, "p1": PREPARED, "p2": COMMITTED}

    set_unreachable(case.state, "p1", False)
    assert wait_until(lambda: not coord.in_doubt(), timeout=15)
    assert coord.state(txid) is TxState.COMMITTED
    assert read_states(case.state).states[txid]["p1"] == COMMITTED
    coord.close()
    assert case.check().ok


def test_missing_factory_is_in_doubt_until_registered(
    case: Case, opened: list[TransactionCoordinator]
) -> None:
    txid = _killed(case, "saga-compensate", "saga.after-compensation:1")
    registry = register_durable(ParticipantRegistry(), case.state, steps=["s0", "s2"])
    coord = TransactionCoordinator(
        case.log, registry=registry, **{**coordinator_options(), "recovery_interval": 0.05}
    )
    opened.append(coord)
    (doubt,) = coord.last_recovery_report.in_doubt
    assert (doubt.txid, doubt.participant, doubt.outcome) == (txid, "s1", "rollback")
    assert "UnknownFactoryError" in (doubt.error or "") and "'s1'" in (doubt.error or "")
    assert coord.state(txid) is TxState.DECIDED_ABORT

    register_durable(registry, case.state, steps=["s1"], participant_factory=None)
    assert wait_until(lambda: not coord.in_doubt(), timeout=15)
    assert coord.state(txid) is TxState.ABORTED
    coord.close()
    assert case.check().ok


def test_restart_in_a_subprocess_recovers(case: Case) -> None:
    _killed(case, "saga-commit", "saga.after-step-log:2")
    recovered = case.restart(in_process=False)
    assert recovered.in_doubt == [] and recovered.unfinished == []
    assert isinstance(recovered.report, dict) and recovered.report["examined"] == 1
    assert case.check().ok


# -- a full disk -------------------------------------------------------------------------


def _commit_one(coord: TransactionCoordinator) -> str:
    txid = coord.begin_transaction()
    for i in range(3):
        coord.enlist_participant(txid, "durable", name=f"p{i}", params={"name": f"p{i}"})
    coord.commit_transaction(txid)
    return txid


def test_full_log_raises_log_full_and_loses_nothing_committed(
    case: Case, opened: list[TransactionCoordinator]
) -> None:
    coord = _open(case, opened, map_size=256 * 1024, max_map_size=256 * 1024)
    acknowledged = []
    with pytest.raises((LogFullError, TransactionAborted)) as info:
        for _ in range(10_000):
            acknowledged.append(_commit_one(coord))
    # the log filled up: either that error, or the transaction it stopped rolled back by it
    error = info.value.cause if isinstance(info.value, TransactionAborted) else info.value
    assert isinstance(error, LogFullError)
    assert "max_map_size" in str(error)
    assert len(acknowledged) > 10
    coord.abandon()  # as if the process died at the full disk

    coord = _open(case, opened, max_map_size=16 * MIB)
    assert coord.last_recovery_report.in_doubt == []
    assert all(coord.state(t) is TxState.COMMITTED for t in acknowledged)
    acknowledged.append(_commit_one(coord))  # room again: work goes on
    coord.close()
    case.acks.write_text("".join(f"commit {t}\n" for t in acknowledged))
    result = case.check()
    assert result.ok, str(result)
    assert result.acknowledged == len(acknowledged)


# -- a damaged log -------------------------------------------------------------------------


def _record_key(txn: lmdb.Transaction, env: lmdb.Environment, txid: str, seq: int) -> bytes:
    """The ``records`` key of record ``seq`` of ``txid`` (docs/log-format-2.md)."""
    tn_key = txn.get(txid.encode(), db=env.open_db(b"txns", txn=txn))
    assert tn_key is not None, txid
    return RECORD_KEY.pack(TN.unpack(bytes(tn_key))[0], seq)


def _flip_last_byte(log: Path, txid: str, seq: int) -> None:
    """Flip the last payload byte of record ``seq`` of ``txid`` through LMDB directly (the
    log closed): the record's checksum no longer matches."""
    env = lmdb.open(str(log), max_dbs=8)
    try:
        with env.begin(write=True) as txn:
            records = env.open_db(b"records", txn=txn)
            key = _record_key(txn, env, txid, seq)
            stored = txn.get(key, db=records)
            assert stored is not None, (txid, seq)
            value = bytearray(stored)
            value[-1] ^= 0xFF
            txn.put(key, bytes(value), db=records)
    finally:
        env.close()


def _put_record(log: Path, txid: str, seq: int, record: Record) -> None:
    """Store ``record`` as record ``seq`` of ``txid``, framed as the writer frames it (a
    valid checksum), through LMDB directly."""
    [(_, _, _, _, payload)] = encode([record])
    env = lmdb.open(str(log), max_dbs=8)
    try:
        with env.begin(write=True) as txn:
            key = _record_key(txn, env, txid, seq)
            txn.put(key, frame(key, payload), db=env.open_db(b"records", txn=txn))
    finally:
        env.close()


def test_a_damaged_record_puts_only_its_transaction_in_doubt_after_a_kill(
    case: Case, opened: list[TransactionCoordinator], caplog: pytest.LogCaptureFixture
) -> None:
    """Two commits left incomplete (p1 failed its commits), a third killed before its
    decision; then one record of the second is damaged. The restart recovers the other two
    and leaves the damaged one in doubt, untouched, on every open."""
    run = case.run("2pc-incomplete", count=3, crash_at="prepare.after-all:3")
    assert run.killed_by_sigkill, run.describe()
    assert run.log_format == 2
    first, second = [line.split()[1] for line in case.acks.read_text().splitlines()]
    [third] = set(read_states(case.state).states) - {first, second}
    with LmdbLog(case.log, readonly=True) as log:  # Opened, Decided, Failed, Acked
        stored = log.read(second)
        assert stored is not None and [type(r) for r in stored.records] == [
            Opened, Decided, Failed, Acked,
        ]  # fmt: skip
    _flip_last_byte(case.log, second, 1)  # its commit decision
    for _ in range(2):  # the damage stays where it is: a second open says the same
        with caplog.at_level(logging.ERROR, logger="dtc_wal"):
            coord = _open(case, opened)
        [doubt] = coord.in_doubt()
        assert (doubt.txid, doubt.damaged, doubt.participant) == (second, True, "*")
        assert f"record 1 of transaction {second}" in (doubt.error or "")
        assert "checksum" in (doubt.error or "")
        assert coord.state(first) is TxState.COMMITTED
        assert coord.state(third) is TxState.ABORTED
        with pytest.raises(TransactionDamagedError, match="dtc repair"):
            coord.state(second)
        coord.close()
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and second in r.message]
    assert len(logged) == 2  # once per open
    states = read_states(case.state).states
    assert set(states[first].values()) == {COMMITTED}
    assert set(states[third].values()) == {ROLLED_BACK}
    assert states[second] == {"p0": COMMITTED, "p1": PREPARED, "p2": COMMITTED}  # untouched
    problems = [p for p in verify_log(case.log).problems if p.check == "record"]
    assert [(p.txid, p.record) for p in problems] == [(second, 1)]
    with LmdbLog(case.log, readonly=True) as log:  # still unfinished, records intact
        assert [t.txid for t in log.unfinished()] == [second]
        stored = log.read(second)
        assert stored is not None and stored.damage is not None
        assert (stored.damage.seq, stored.damage.damage) == (1, Damage.BAD_CHECKSUM)
        assert [type(r) for r in stored.records] == [Opened]


def test_repair_keeps_a_copy_then_drops_the_damaged_transaction(
    case: Case, opened: list[TransactionCoordinator]
) -> None:
    txid = _killed(case, "2pc-commit", "decision.after-commit-log")
    live = _open(case, opened, recover=False)
    with pytest.raises(LogLockedError):
        drop_transaction(case.log, txid, case.root / "refused", force=False)
    live.close()
    with pytest.raises(TransactionStateError, match="not damaged"):
        # recovery can finish this one: refused
        drop_transaction(case.log, txid, case.root / "refused", force=False)
    assert not (case.root / "refused").exists()  # nothing copied for a refusal
    _flip_last_byte(case.log, txid, 1)  # its commit decision

    dropped = drop_transaction(case.log, txid, case.root / "evidence", force=False)
    assert dropped.backup == case.root / "evidence"
    assert dropped.records_removed == 2  # Opened and the damaged Decided
    damage = dropped.before.damage
    assert damage is not None and (damage.seq, damage.damage) == (1, Damage.BAD_CHECKSUM)
    [opening] = dropped.before.records  # what still read before the damage
    assert isinstance(opening, Opened)
    assert [m.name for m in opening.members] == ["p0", "p1", "p2"]
    evidence = verify_log(case.root / "evidence")  # the copy still holds the damage
    assert [(p.txid, p.record) for p in evidence.problems if p.check == "record"] == [(txid, 1)]
    assert verify_log(case.log).ok
    with LmdbLog(case.log, readonly=True) as log:
        assert log.read(txid) is None
        assert list(log.unfinished()) == []

    coord = _open(case, opened)  # starts again; the dropped transaction is the operator's
    assert coord.last_recovery_report.examined == 0
    assert coord.in_doubt() == []
    coord.close()
    held = read_states(case.state).states[txid]
    assert set(held.values()) == {PREPARED}  # nobody was told anything
    for member in opening.members:  # settled by hand, from the evidence
        DurableParticipant(case.state, member.name).rollback(txid)
    assert set(read_states(case.state).states[txid].values()) == {ROLLED_BACK}
    with pytest.raises(UnknownTransactionError):
        drop_transaction(case.log, txid, case.root / "again", force=True)  # gone


def test_an_impossible_transition_puts_its_transaction_in_doubt(
    case: Case, opened: list[TransactionCoordinator]
) -> None:
    txid = _killed(case, "2pc-commit", "prepare.after-all")  # only its Opened record
    forged = Acked(txid, 0.0, ((0, MemberState.COMMITTED),))
    _put_record(case.log, txid, 1, forged)  # a valid checksum, a wrong order: no decision
    coord = _open(case, opened)
    [doubt] = coord.in_doubt()
    assert (doubt.txid, doubt.damaged) == (txid, True)
    assert "do not fold" in (doubt.error or "") and "Acked" in (doubt.error or "")
    [action] = coord.last_recovery_report.transactions
    assert (action.txid, action.finished) == (txid, False)
    with pytest.raises(TransactionDamagedError, match="dtc repair"):
        coord.resolve(txid, "abort", reason="by hand")
    coord.close()
    assert set(read_states(case.state).states[txid].values()) == {PREPARED}
    problems = verify_log(case.log).problems
    assert [(p.check, p.txid, p.record) for p in problems if p.check == "transition"] == [
        ("transition", txid, 1)
    ]


# -- stale readers -------------------------------------------------------------------------


def _hold_reader(log: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        workload_command("hold-reader", "--log", str(log)), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def _reader_pids(log: Path) -> set[int]:
    """The pids in LMDB's reader table (``mdb_reader_list``: pid, thread, txnid lines)."""
    env = lmdb.open(str(log), max_dbs=8, readonly=True)
    try:
        listing: str = env.readers()
    finally:
        env.close()
    rows = (line.split() for line in listing.splitlines())
    return {int(row[0]) for row in rows if row and row[0].isdigit()}


def test_stale_readers_of_a_killed_process_are_cleared_on_open(case: Case) -> None:
    """LMDB resets its reader table when the first process opens the log, so stale slots
    matter while some process keeps it open: here a live reader, as a CLI would."""
    assert case.run("2pc-commit").returncode == 0
    survivor = _hold_reader(case.log)
    try:
        victim = _hold_reader(case.log)
        victim.kill()
        assert victim.wait() == -9
        assert victim.pid in _reader_pids(case.log)  # the dead process's slot stays

        recovered = case.restart()
        assert recovered.stale_readers_cleared >= 1
        pids = _reader_pids(case.log)
        assert victim.pid not in pids
        assert survivor.pid in pids
    finally:
        survivor.kill()
        survivor.wait()


# -- zombies ---------------------------------------------------------------------------------


def test_zombie_reaper_aborts_an_old_open_transaction_and_logs_it(
    case: Case, opened: list[TransactionCoordinator], caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    coord = _open(case, opened, clock=clock, zombie_timeout=60.0)
    old = coord.begin_transaction()
    coord.enlist_participant(old, "durable", name="p0", params={"name": "p0"})
    clock.advance(45)
    young = coord.begin_transaction()
    coord.enlist_participant(young, "durable", name="p1", params={"name": "p1"})
    clock.advance(20)
    with caplog.at_level(logging.WARNING, logger="dtc_wal"):
        assert coord.reap_zombies() == [old]
    assert any(old in r.getMessage() and "zombie" in r.getMessage() for r in caplog.records)
    assert coord.state(old) is TxState.ABORTED
    assert read_states(case.state).states[old] == {"p0": NULL_ROLLBACK}
    coord.commit_transaction(young)  # the young one is untouched
    assert coord.state(young) is TxState.COMMITTED
    coord.close()
    assert case.check().ok


def test_background_loop_reaps_zombies(
    case: Case, opened: list[TransactionCoordinator], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dtc_wal")
    coord = _open(case, opened, zombie_timeout=0.05, recovery_interval=0.02)
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, "durable", name="p0", params={"name": "p0"})
    assert wait_until(lambda: txid not in coord.live_txids, timeout=10)
    assert coord.state(txid) is TxState.ABORTED
    assert wait_until(lambda: any(txid in r.getMessage() for r in caplog.records), timeout=5)
