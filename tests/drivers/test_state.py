"""What the facade reads of the engine: a live run's transaction, the log's folded one,
the live set and whether commit began."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import RecordingParticipant

from dtc_wal.drivers import Engine
from dtc_wal.errors import TransactionDamagedError, UnknownTransactionError
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol import Decided, MemberSpec, MemberState, Mode, Opened, Outcome, TxState, Vote

from .test_recover_report import damage


def test_a_live_run_is_seen_before_and_during_commit_then_read_from_the_log(
    engine: Engine,
) -> None:
    txid = engine.begin()
    assert engine.live_txids() == {txid} and engine.started(txid) is False
    engine.enlist(txid, RecordingParticipant("a"))
    before = engine.transaction(txid)
    assert before is not None and before.state is TxState.ACTIVE
    assert [m.name for m in before.members] == ["a"] and before.mode is Mode.TWO_PHASE
    assert engine.read(txid) is None  # nothing logged before commit
    during: list[object] = []
    inside = RecordingParticipant(
        "b",
        on_commit=lambda t: during.append(
            (engine.started(t), engine.transaction(t), t in engine.live_txids())
        ),
    )
    engine.enlist(txid, inside)
    engine.commit(txid, {"k": 1})
    ((started, seen, live),) = during
    assert started and live
    assert seen is not None and seen.state is TxState.DECIDED_COMMIT and seen.data == {"k": 1}
    assert engine.transaction(txid) is None and engine.live_txids() == set()
    with pytest.raises(UnknownTransactionError):
        engine.started(txid)
    after = engine.read(txid)
    assert after is not None and after.state is TxState.COMMITTED
    assert [m.state for m in after.members] == [MemberState.COMMITTED] * 2


def test_the_copy_is_the_callers_own(engine: Engine) -> None:
    txid = engine.begin()
    engine.enlist(txid, RecordingParticipant("a"))
    copy = engine.transaction(txid)
    assert copy is not None
    copy.members.clear()
    again = engine.transaction(txid)
    assert again is not None and len(again.members) == 1


def test_reading_a_damaged_transaction_raises_the_damage_error(tmp_path: Path) -> None:
    path = tmp_path / "log"
    spec = MemberSpec("a", None, None)
    with LmdbLog(path) as log:
        log.append([Opened("t", 1.0, Mode.TWO_PHASE, (spec,), None)])
        log.append([Decided("t", 2.0, Outcome.COMMIT, ((0, Vote.YES),))])
    damage(path, "t", 1)
    with LmdbLog(path) as log, Engine(log) as engine:
        with pytest.raises(TransactionDamagedError, match="transaction t is damaged"):
            engine.read("t")
        assert engine.read("other") is None


def test_live_txids_is_a_snapshot_under_concurrent_begins(engine: Engine) -> None:
    txids: list[str] = []
    lock = threading.Lock()

    def begin() -> None:
        for _ in range(50):
            t = engine.begin()
            with lock:
                txids.append(t)

    threads = [threading.Thread(target=begin) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.live_txids() == set(txids) and len(txids) == 200
