"""Engine.recover() and Engine.in_doubt() in the old core's report (RecoveryReport): one
action per transaction, in-doubt members, damaged transactions left alone, progress,
dry runs that change nothing, orphan prepared branches, and the engine's counters."""

from __future__ import annotations

import contextlib
from pathlib import Path

import lmdb
from helpers import FOREVER, Failures, Journal, RecordingParticipant

from dtc_wal.drivers import Engine, EngineOptions
from dtc_wal.errors import TransactionAborted
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN
from dtc_wal.protocol import Decided, Ended, MemberSpec, MemberState, Mode, Opened, Outcome, Vote
from dtc_wal.recovery import InDoubt, TransactionAction
from dtc_wal.registry import ParticipantRegistry
from dtc_wal.testing.durable_reader import read_states
from dtc_wal.testing.durable_registry import register_durable

from .conftest import FAST_RETRIES

A = MemberSpec("a", "rec", {"name": "a"})
OBJ = MemberSpec("obj", None, None)
YES2 = ((0, Vote.YES), (1, Vote.YES))


def recording(journal: Journal) -> ParticipantRegistry:
    registry = ParticipantRegistry()
    registry.register("rec", lambda name: RecordingParticipant(name, journal))
    return registry


def damage(path: Path, txid: str, seq: int) -> None:
    """Flip the last byte of one stored record (the log closed): its checksum fails."""
    env = lmdb.open(str(path), max_dbs=8)
    try:
        records, txns = env.open_db(b"records"), env.open_db(b"txns")
        with env.begin(write=True) as txn:
            tn_key = txn.get(txid.encode(), db=txns)
            key = RECORD_KEY.pack(TN.unpack(tn_key)[0], seq)
            value = bytearray(txn.get(key, db=records))
            value[-1] ^= 0x01
            txn.put(key, bytes(value), db=records)
    finally:
        env.close()


def three_kinds(path: Path) -> None:
    """An undecided transaction, a decided one with a member that cannot be rebuilt, and
    one damaged in its second record."""
    with LmdbLog(path) as log:
        log.append([Opened("undecided", 1.0, Mode.TWO_PHASE, (A,), None)])
        log.append([Opened("decided", 2.0, Mode.TWO_PHASE, (A, OBJ), None)])
        log.append([Decided("decided", 3.0, Outcome.COMMIT, YES2)])
        log.append([Opened("damaged", 4.0, Mode.TWO_PHASE, (A,), None)])
        log.append([Decided("damaged", 5.0, Outcome.COMMIT, ((0, Vote.YES),))])
    damage(path, "damaged", 1)


def test_a_pass_reports_each_transaction_and_leaves_the_damaged_one_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log"
    three_kinds(path)
    journal = Journal()
    seen: list[tuple[int, int]] = []
    with LmdbLog(path) as log, Engine(log, recording(journal)) as engine:
        report = engine.recover(progress=lambda done, total: seen.append((done, total)))
        log.flush()
        assert log.read("undecided").finished  # type: ignore[union-attr]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    by_txid = {t.txid: t for t in report.transactions}
    assert by_txid["undecided"] == TransactionAction(
        "undecided", "2pc", "active", "presumed abort: roll back", "rollback", True, ()
    )
    assert by_txid["decided"] == TransactionAction(
        "decided", "2pc", "decided-commit", "re-send commit", "commit", False, ("obj",)
    )
    damaged = by_txid["damaged"]
    assert (damaged.outcome, damaged.finished, damaged.pending) == (None, False, ("a",))
    assert damaged.action == "damaged at record 1: left alone"
    assert report.finished == ["undecided"]
    assert report.damaged == ["damaged"]
    (obj, hurt) = report.in_doubt
    assert (obj.txid, obj.participant, obj.outcome, obj.state) == (
        "decided",
        "obj",
        "commit",
        "prepared",
    )
    assert "enlisted as an object" in (obj.error or "") and obj.attempts == 0
    assert (hurt.txid, hurt.participant, hurt.damaged) == ("damaged", "*", True)
    assert hurt.state == "damaged"
    assert journal.of("decided") == [("a", "commit")]  # the others were still driven
    assert journal.of("damaged") == []  # never driven
    assert journal.of("undecided") == [("a", "rollback")]


def test_a_dry_run_says_what_a_pass_would_do_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log"
    three_kinds(path)
    journal = Journal()
    with LmdbLog(path) as log, Engine(log, recording(journal)) as engine:
        before = {s.txid: s.records for s in log.unfinished()}
        report = engine.recover(dry_run=True)
        after = {s.txid: s.records for s in log.unfinished()}
        assert engine.counters.snapshot()["recovery_passes"] == 0
    assert after == before and journal.calls == []
    assert report.dry_run
    actions = {t.txid: t.action for t in report.transactions}
    assert actions == {
        "undecided": "presumed abort: roll back: a",
        "decided": "re-send commit: a, obj",
        "damaged": "damaged at record 1: left alone",
    }
    assert [(d.txid, d.participant) for d in report.in_doubt] == [
        ("decided", "obj"),
        ("damaged", "*"),
    ]
    assert "would finish 1" in report.summary()


def test_records_that_do_not_fold_are_reported_damaged_not_driven(log: LmdbLog) -> None:
    journal = Journal()
    log.append([Opened("bad", 1.0, Mode.TWO_PHASE, (A, OBJ), None)])
    log.append([Decided("bad", 2.0, Outcome.COMMIT, ((0, Vote.YES),))])  # a vote missing
    with Engine(log, recording(journal)) as engine:
        report = engine.recover()
        doubts = engine.in_doubt()
    (action,) = report.transactions
    assert action.action == "its records do not fold: left alone"
    assert action.pending == ("a", "obj")
    assert report.damaged == ["bad"] and journal.calls == []
    (doubt,) = doubts
    assert doubt.damaged and "do not fold" in (doubt.error or "")


def test_in_doubt_lists_pending_members_of_transactions_not_live(log: LmdbLog) -> None:
    log.append([Opened("undecided", 1.0, Mode.TWO_PHASE, (A, OBJ), None)])
    with Engine(log, recording(Journal()), EngineOptions(policy=FAST_RETRIES)) as engine:
        live = engine.begin()
        engine.enlist(live, RecordingParticipant("x"))
        stuck = RecordingParticipant("stuck", rollback_failures=Failures(FOREVER))
        failed = engine.begin()
        engine.enlist(failed, stuck)
        engine.enlist(failed, RecordingParticipant("no", vote_no=True))
        with contextlib.suppress(TransactionAborted):
            engine.commit(failed)
        doubts = engine.in_doubt()
        assert engine.started(live) is False
    by_member = {(d.txid, d.participant): d for d in doubts}
    assert set(by_member) == {("undecided", "a"), ("undecided", "obj"), (failed, "stuck")}
    assert by_member["undecided", "a"] == InDoubt(
        "undecided", "a", None, "enlisted", None, 0, awaiting_recovery=True
    )
    assert not by_member["undecided", "obj"].awaiting_recovery
    assert "settle it by hand" in (by_member["undecided", "obj"].error or "")
    stuck_doubt = by_member[failed, "stuck"]
    assert (stuck_doubt.outcome, stuck_doubt.awaiting_recovery) == ("rollback", False)
    assert stuck_doubt.attempts == FAST_RETRIES.max_retries + 1
    assert "injected failure" in (stuck_doubt.error or "")


def test_orphan_prepared_branches_follow_the_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    registry = register_durable(ParticipantRegistry(), state, listing=["L"])
    member = registry.create("durable-listing", {"name": "L"})
    for txid in ("unknown", "committed", "live"):
        member.prepare(txid, {})  # type: ignore[attr-defined]
    spec = MemberSpec("L", "durable-listing", {"name": "L"})
    with LmdbLog(tmp_path / "log") as log:
        log.append([Opened("committed", 1.0, Mode.TWO_PHASE, (spec,), None)])
        log.append([Decided("committed", 2.0, Outcome.COMMIT, ((0, Vote.YES),))])
        log.append([Ended("committed", 3.0, ((0, MemberState.COMMITTED),))])
        with Engine(log, registry) as engine:
            report = engine.recover(skip={"live"})
    assert sorted(report.orphans) == [
        ("durable-prepared", "committed", "commit"),
        ("durable-prepared", "unknown", "rollback"),
    ]
    states = read_states(state).states
    assert states["committed"]["L"] == "committed"
    assert states["unknown"]["L"].startswith("rolled-back")
    assert states["live"]["L"] == "prepared"


def test_the_engine_counts_what_the_facade_reports(log: LmdbLog) -> None:
    journal = Journal()
    with Engine(log, recording(journal), EngineOptions(policy=FAST_RETRIES)) as engine:
        ok = engine.begin()
        engine.enlist(ok, RecordingParticipant("a"))
        engine.commit(ok)
        no = engine.begin()
        engine.enlist(no, RecordingParticipant("n", vote_no=True))
        engine.enlist(no, RecordingParticipant("m"))
        with contextlib.suppress(TransactionAborted):
            engine.commit(no)
        back = engine.begin()
        engine.enlist(back, RecordingParticipant("b"))
        engine.rollback(back)
        slow = engine.begin()
        engine.enlist(slow, RecordingParticipant("c", commit_failures=Failures(FOREVER)))
        engine.enlist(slow, RecordingParticipant("d"))
        with contextlib.suppress(Exception):
            engine.commit(slow)
        later = engine.begin()
        engine.enlist(later, RecordingParticipant("e"))
        engine.enlist(later, RecordingParticipant("f"))
        engine.commit(later, wait=False).wait(10)  # type: ignore[union-attr]
        log.append([Opened("undecided", 1.0, Mode.TWO_PHASE, (A,), None)])
        engine.recover()
        counts = engine.counters.snapshot()
    assert {k: counts[k] for k in ("committed", "aborted", "incomplete")} == {
        "committed": 3,
        "aborted": 2,
        "incomplete": 1,
    }
    assert (counts["recovery_passes"], counts["recovered"]) == (1, 1)
