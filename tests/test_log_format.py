"""``TransactionCoordinator`` writes log format 2 (the only one this version writes): what is
particular to the format -- the records a commit leaves, a format-1 log or ``log_format=1``
refused without touching anything, bad ``log_format`` values -- and the seed paths end to
end on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import Failures, Journal, RecordingParticipant, RecordingStep, saga_functions

from dtc_wal import (
    CommitIncompleteError,
    ManualClock,
    NotRecoverableWarning,
    ParticipantRegistry,
    TransactionAborted,
    TransactionCoordinator,
)
from dtc_wal.errors import InvalidOptionError, UnsupportedFormatError
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.format import log_format
from dtc_wal.protocol import Decided, Ended, MemberState, Opened, Outcome, TxState


def open2(path: Path, **kw: object) -> TransactionCoordinator:
    return TransactionCoordinator(path, log_format=2, recovery_interval=None, **kw)  # type: ignore[arg-type]


def records_of(path: Path, txid: str) -> list[type]:
    with LmdbLog(path, readonly=True) as log:
        stored = log.read(txid)
    assert stored is not None
    return [type(r) for r in stored.records]


def test_a_new_log_is_format_2_with_three_records_per_commit(
    log_dir: Path, journal: Journal
) -> None:
    with open2(log_dir) as coord:
        txid = coord.begin_transaction()
        a, b = RecordingParticipant("a", journal), RecordingParticipant("b", journal)
        coord.enlist_participant(txid, a)
        coord.enlist_participant(txid, b)
        coord.commit_transaction(txid, data={"order": 7})
        assert coord.state(txid) is TxState.COMMITTED
        view = coord.transaction(txid)
        assert [p.state for p in view.ordered()] == [MemberState.COMMITTED] * 2
        assert view.data == {"order": 7}
    assert log_format(log_dir) == 2
    assert records_of(log_dir, txid) == [Opened, Decided, Ended]
    assert a.prepared_data == [{"order": 7}]
    calls = journal.of(txid)
    assert sorted(calls[:2]) == [("a", "prepare"), ("b", "prepare")]
    assert sorted(calls[2:]) == [("a", "commit"), ("b", "commit")]
    with TransactionCoordinator(log_dir, recovery_interval=None) as again:  # no option
        assert again.state(txid) is TxState.COMMITTED


FORMAT1 = Path(__file__).parent / "fixtures" / "format1" / "mixed"


def test_a_format_1_log_is_refused_and_never_converted_by_opening(tmp_path: Path) -> None:
    log = tmp_path / "old"
    shutil.copytree(FORMAT1, log)
    before = (log / "data.mdb").read_bytes()
    for options in ({}, {"log_format": 2}):
        with pytest.raises(UnsupportedFormatError, match=r"format 1.*`dtc upgrade .* --in-place`"):
            TransactionCoordinator(log, recovery_interval=None, **options)  # type: ignore[arg-type]
    assert log_format(log) == 1 and (log / "data.mdb").read_bytes() == before


def test_log_format_1_is_refused_for_a_new_or_a_format_2_log(log_dir: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="writes only log format 2"):
        TransactionCoordinator(log_dir, log_format=1)
    assert not (log_dir / "data.mdb").exists()
    open2(log_dir).close()
    with pytest.raises(UnsupportedFormatError, match="writes only log format 2"):
        TransactionCoordinator(log_dir, log_format=1)
    assert log_format(log_dir) == 2


def test_bad_log_format_values_are_refused(log_dir: Path) -> None:
    for bad in (3, True, "2"):
        with pytest.raises(InvalidOptionError, match="log_format"):
            TransactionCoordinator(log_dir, log_format=bad)  # type: ignore[arg-type]
    assert not (log_dir / "data.mdb").exists()


def test_a_no_vote_aborts_everywhere(log_dir: Path, journal: Journal) -> None:
    with open2(log_dir) as coord:
        txid = coord.begin_transaction()
        ok = RecordingParticipant("ok", journal)
        coord.enlist_participant(txid, ok)
        coord.enlist_participant(txid, RecordingParticipant("no", journal, vote_no=True))
        with pytest.raises(TransactionAborted) as caught:
            coord.commit_transaction(txid)
        assert "no" in caught.value.reason
        assert coord.state(txid) is TxState.ABORTED
        assert coord.transaction(txid).outcome is Outcome.ABORT
    assert "rollback" in journal.what("ok", txid)


def test_a_saga_and_its_compensation(log_dir: Path, journal: Journal) -> None:
    with open2(log_dir) as coord:
        txid = coord.begin_transaction()
        with pytest.warns(NotRecoverableWarning, match="cannot be rebuilt"):  # closures
            coord.register_participant(txid, "order", *saga_functions("order", journal))
            coord.register_participant(txid, "pay", *saga_functions("pay", journal, fail=True))
        with pytest.raises(TransactionAborted):
            coord.commit_transaction(txid, data={"sku": "A1"})
        assert coord.state(txid) is TxState.ABORTED
    assert journal.what("order", txid) == ["commit", "rollback"]


def test_a_step_object_saga_commits(log_dir: Path, journal: Journal) -> None:
    registry = ParticipantRegistry()
    registry.register("order", lambda: RecordingStep("order", journal))
    with open2(log_dir, registry=registry) as coord:
        txid = coord.begin_transaction()
        coord.register_participant(txid, "order")
        coord.commit_transaction(txid, data={"sku": "A1"})
        assert coord.state(txid) is TxState.COMMITTED
        assert coord.transaction(txid).participants["order"].factory == "order"


def test_an_unacknowledged_commit_is_finished_by_recovery(log_dir: Path, journal: Journal) -> None:
    failures = Failures(times=100)
    built: list[RecordingParticipant] = []

    def make(name: str) -> RecordingParticipant:
        p = RecordingParticipant(name, journal, commit_failures=failures)
        built.append(p)
        return p

    registry = ParticipantRegistry()
    registry.register("slow", make)
    with open2(log_dir, registry=registry, max_retries=0, phase2_timeout=5) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, "slow", params={"name": "s"})
        coord.enlist_participant(txid, RecordingParticipant("fine", journal))
        with pytest.raises(CommitIncompleteError):
            coord.commit_transaction(txid)
        assert coord.state(txid) is TxState.DECIDED_COMMIT
        assert [d.participant for d in coord.in_doubt()] == ["slow"]
        failures.times = 0
        report = coord.recover_now()
        assert txid in report.finished
        assert coord.state(txid) is TxState.COMMITTED
        assert coord.stats().incomplete == 1


def test_the_reaper_rolls_back_an_open_transaction(log_dir: Path, journal: Journal) -> None:
    clock = ManualClock()
    with open2(log_dir, clock=clock, zombie_timeout=10) as coord:
        txid = coord.begin_transaction()
        p = RecordingParticipant("p", journal)
        coord.enlist_participant(txid, p)
        assert coord.reap_zombies() == []
        clock.advance(11)
        assert coord.reap_zombies() == [txid]
        assert coord.state(txid) is TxState.ABORTED
        assert coord.stats().zombies_reaped == 1
    assert journal.what("p", txid) == ["rollback"]
