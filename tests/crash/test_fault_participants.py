"""The faulty participant wrappers, alone and driven by a real coordinator."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from helpers import Journal, RecordingParticipant, RecordingStep

from dtc_wal import ManualClock, TransactionAborted, TransactionCoordinator, TxState, VoteNo
from dtc_wal.errors import ParticipantTimeoutError
from dtc_wal.testing.participants import (
    FOREVER,
    AlwaysFail,
    FailTimes,
    FaultyParticipant,
    FaultyStep,
    Hang,
    Slow,
)


def test_fail_times_fails_n_times_then_lets_calls_through() -> None:
    inner = RecordingParticipant("p")
    flaky = FaultyParticipant(inner, FailTimes(2))
    for attempt in (1, 2):
        with pytest.raises(ConnectionError, match=f"{attempt} of 2"):
            flaky.prepare("tx", {})
    flaky.prepare("tx", {})
    assert inner.calls("prepare") == 1
    assert flaky.calls == [("prepare", "tx")] * 3
    assert flaky.name == "p"


def test_a_fault_limited_to_a_phase_leaves_the_others_alone() -> None:
    inner = RecordingParticipant("p")
    faulty = FaultyParticipant(inner, AlwaysFail("commit"))
    faulty.prepare("tx", {})
    faulty.rollback("tx")
    for _ in range(3):
        with pytest.raises(ConnectionError, match="always"):
            faulty.commit("tx")
    assert inner.journal.what("p") == ["prepare", "rollback"]


def test_custom_error_and_unknown_phase() -> None:
    refuse = FaultyParticipant(
        RecordingParticipant("p"), FailTimes(FOREVER, "prepare", lambda p, t: VoteNo(f"{p} {t}"))
    )
    with pytest.raises(VoteNo, match="prepare tx"):
        refuse.prepare("tx", {})
    with pytest.raises(ValueError, match="unknown phase"):
        FailTimes(1, "vote")
    with pytest.raises(ValueError):
        FailTimes(-2)
    with pytest.raises(ValueError):
        Slow(-1.0)


def test_slow_sleeps_through_the_given_clock() -> None:
    clock = ManualClock()
    step = FaultyStep(RecordingStep("s", Journal()), Slow(2.5, "action", sleep=clock.sleep))
    step.action("tx", {})
    step.compensate("tx")
    assert clock.slept == [2.5]


def test_hang_blocks_until_released() -> None:
    hang = Hang("commit")
    faulty = FaultyParticipant(RecordingParticipant("p"), hang)
    thread = threading.Thread(target=faulty.commit, args=("tx",))
    thread.start()
    assert hang.entered.wait(5)
    assert thread.is_alive()
    hang.release()
    thread.join(5)
    assert not thread.is_alive() and hang.hung == 1


def test_hang_gives_up_after_its_limit() -> None:
    faulty = FaultyParticipant(RecordingParticipant("p"), Hang(limit=0.01))
    with pytest.raises(TimeoutError, match="hung"):
        faulty.rollback("tx")


# -- under a coordinator -------------------------------------------------------------------


def test_coordinator_retries_through_transient_commit_failures(
    coord: TransactionCoordinator,
) -> None:
    inner = RecordingParticipant("p")
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, FaultyParticipant(inner, FailTimes(2, "commit")))
    coord.commit_transaction(txid)
    assert coord.state(txid) is TxState.COMMITTED
    assert inner.journal.what("p") == ["prepare", "commit"]


def test_participant_failing_prepare_forever_aborts(coord: TransactionCoordinator) -> None:
    good, bad = RecordingParticipant("good"), RecordingParticipant("bad")
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, good)
    coord.enlist_participant(txid, FaultyParticipant(bad, AlwaysFail("prepare")))
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)
    assert isinstance(info.value.cause, ConnectionError)
    assert good.journal.what("good") == ["prepare", "rollback"]
    assert bad.journal.what("bad") == ["rollback"]


def test_prepare_hanging_past_the_timeout_aborts(
    make_coord: Callable[..., TransactionCoordinator],
) -> None:
    coord = make_coord(prepare_timeout=0.2, recovery_interval=None)
    good = RecordingParticipant("good")
    with Hang("prepare") as hang:
        hung = FaultyParticipant(RecordingParticipant("slow"), hang)
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, good)
        coord.enlist_participant(txid, hung)
        with pytest.raises(TransactionAborted) as info:
            coord.commit_transaction(txid)
    assert isinstance(info.value.cause, ParticipantTimeoutError)
    assert coord.state(txid) is TxState.ABORTED
    assert good.journal.what("good") == ["prepare", "rollback"]


def test_saga_step_failing_its_action_is_compensated(coord: TransactionCoordinator) -> None:
    journal = Journal()
    ok = FaultyStep(RecordingStep("a", journal))
    failing = FaultyStep(RecordingStep("b", journal), AlwaysFail("action", lambda p, t: OSError(p)))
    txid = coord.begin_transaction()
    coord.register_participant(txid, "a", ok.action, ok.compensate)
    coord.register_participant(txid, "b", failing.action, failing.compensate)
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)
    # b failed before reaching its action, yet is compensated: it may have done part of it
    assert journal.of(txid) == [("a", "action"), ("b", "compensate"), ("a", "compensate")]
