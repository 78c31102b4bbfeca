"""Retries with exponential backoff and jitter, counted on a ManualClock (no real sleeping)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from helpers import FOREVER, Failures, Journal, RecordingParticipant, RecordingStep

from dtc_wal import (
    ManualClock,
    ParticipantRegistry,
    TransactionAborted,
    TransactionCoordinator,
    TransientError,
    TxState,
    VoteNo,
)
from dtc_wal.errors import CommitIncompleteError

MakeCoord = Callable[..., TransactionCoordinator]

BASE = 1.0  # backoff_initial: big enough that jitter cannot hide a doubling
JITTER = 0.1


@pytest.fixture
def retrying(make_coord: MakeCoord, clock: ManualClock) -> Callable[..., TransactionCoordinator]:
    def make(**kwargs: object) -> TransactionCoordinator:
        options: dict[str, object] = {
            "clock": clock,
            "backoff_initial": BASE,
            "backoff_max": 1000.0,
            "jitter": JITTER,
            "max_retries": 5,
        }
        options.update(kwargs)
        return make_coord(**options)

    return make


def assert_exponential(
    slept: list[float], n: int, base: float = BASE, jitter: float = JITTER
) -> None:
    """``n`` sleeps, the i-th within [base * 2**i, base * 2**i + jitter]."""
    assert len(slept) == n, slept
    for i, seconds in enumerate(slept):
        assert base * 2**i <= seconds <= base * 2**i + jitter, (i, slept)
    for earlier, later in itertools.pairwise(slept):
        assert 1.8 < later / earlier <= 2.2


def one_participant_tx(coord: TransactionCoordinator, *participants: RecordingParticipant) -> str:
    txid = coord.begin_transaction()
    for participant in participants:
        coord.enlist_participant(txid, participant)
    return txid


@pytest.mark.parametrize("failures", [1, 2, 4])
@pytest.mark.parametrize("error", [TransientError, ConnectionError], ids=lambda e: e.__name__)
def test_transient_prepare_errors_are_retried_with_exponential_backoff(
    retrying: MakeCoord,
    clock: ManualClock,
    journal: Journal,
    failures: int,
    error: type[Exception],
) -> None:
    coord = retrying()
    flaky = RecordingParticipant(
        "flaky", journal, prepare_failures=Failures(failures, lambda: error("try again"))
    )
    txid = one_participant_tx(coord, flaky)
    coord.commit_transaction(txid)
    assert flaky.calls("prepare") == failures + 1
    assert flaky.calls("commit") == 1
    assert_exponential(clock.slept, failures)
    assert coord.state(txid) is TxState.COMMITTED


def test_exhausted_prepare_retries_abort(
    retrying: MakeCoord, clock: ManualClock, journal: Journal
) -> None:
    coord = retrying(max_retries=3)
    down = RecordingParticipant(
        "down", journal, prepare_failures=Failures(FOREVER, lambda: ConnectionError("refused"))
    )
    other = RecordingParticipant("other", journal)
    txid = one_participant_tx(coord, down, other)
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)
    assert isinstance(info.value.cause, ConnectionError)
    assert down.calls("prepare") == 4  # the first try + max_retries
    assert_exponential(clock.slept, 3)
    assert journal.what("other", txid) == ["prepare", "rollback"]
    assert down.calls("rollback") == 1
    assert coord.state(txid) is TxState.ABORTED


@pytest.mark.parametrize("max_retries", [0, 1, 2])
def test_max_retries_is_respected(
    retrying: MakeCoord, clock: ManualClock, journal: Journal, max_retries: int
) -> None:
    coord = retrying(max_retries=max_retries)
    down = RecordingParticipant("down", journal, prepare_failures=Failures(FOREVER, TransientError))
    txid = one_participant_tx(coord, down)
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)
    assert down.calls("prepare") == max_retries + 1
    assert len(clock.slept) == max_retries


def test_backoff_is_capped(retrying: MakeCoord, clock: ManualClock, journal: Journal) -> None:
    coord = retrying(backoff_initial=1.0, backoff_max=3.0, max_retries=6)
    down = RecordingParticipant("down", journal, prepare_failures=Failures(FOREVER, TransientError))
    txid = one_participant_tx(coord, down)
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)
    assert len(clock.slept) == 6
    assert 1.0 <= clock.slept[0] <= 1.0 + JITTER
    assert 2.0 <= clock.slept[1] <= 2.0 + JITTER
    assert all(s <= 3.0 + JITTER for s in clock.slept)
    assert clock.slept[-1] >= 3.0 - 1e-9


@pytest.mark.parametrize(
    "error",
    [lambda: VoteNo("no"), lambda: ValueError("bad order"), lambda: KeyError("sku")],
    ids=["VoteNo", "ValueError", "KeyError"],
)
def test_vote_no_and_non_transient_prepare_errors_are_not_retried(
    retrying: MakeCoord, clock: ManualClock, journal: Journal, error: Callable[[], Exception]
) -> None:
    coord = retrying()
    refusing = RecordingParticipant("refusing", journal, prepare_failures=Failures(FOREVER, error))
    txid = one_participant_tx(coord, refusing)
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)
    assert type(info.value.cause) is type(error())
    assert refusing.calls("prepare") == 1
    assert clock.slept == []


def test_transient_vote_no_subclass_is_still_not_retried(
    retrying: MakeCoord, clock: ManualClock, journal: Journal
) -> None:
    class NoButTransient(VoteNo, ConnectionError):
        pass

    coord = retrying()
    refusing = RecordingParticipant(
        "refusing", journal, prepare_failures=Failures(FOREVER, lambda: NoButTransient("no"))
    )
    txid = one_participant_tx(coord, refusing)
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)
    assert refusing.calls("prepare") == 1


@pytest.mark.parametrize(
    "error",
    [lambda: ValueError("odd"), lambda: RuntimeError("db restarting"), TransientError],
    ids=["ValueError", "RuntimeError", "TransientError"],
)
def test_commit_after_decision_retries_any_error(
    retrying: MakeCoord, clock: ManualClock, journal: Journal, error: Callable[[], Exception]
) -> None:
    coord = retrying()
    slow = RecordingParticipant("slow", journal, commit_failures=Failures(3, error))
    fine = RecordingParticipant("fine", journal)
    txid = one_participant_tx(coord, slow, fine)
    coord.commit_transaction(txid)  # returns: every participant acknowledged in the end
    assert slow.calls("commit") == 4
    assert fine.calls("commit") == 1
    assert_exponential(clock.slept, 3)
    assert coord.state(txid) is TxState.COMMITTED


def test_exhausted_commit_retries_leave_the_transaction_to_recovery(
    retrying: MakeCoord, clock: ManualClock, journal: Journal
) -> None:
    coord = retrying(max_retries=2)
    stuck = RecordingParticipant("stuck", journal, commit_failures=Failures(FOREVER, ValueError))
    txid = one_participant_tx(coord, stuck)
    with pytest.raises(CommitIncompleteError):
        coord.commit_transaction(txid)
    assert stuck.calls("commit") == 3
    assert len(clock.slept) == 2
    assert coord.transaction(txid).participants["stuck"].attempts == 3


def test_rollback_after_decision_retries_any_error(
    retrying: MakeCoord, clock: ManualClock, journal: Journal
) -> None:
    coord = retrying()
    no = RecordingParticipant("no", journal, vote_no=True)
    slow = RecordingParticipant(
        "slow", journal, rollback_failures=Failures(2, lambda: OSError("x"))
    )
    txid = one_participant_tx(coord, no, slow)
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)
    assert info.value.pending == ()
    assert slow.calls("rollback") == 3
    assert no.calls("rollback") == 1
    assert_exponential(clock.slept, 2)
    assert coord.state(txid) is TxState.ABORTED


def test_saga_action_transient_errors_are_retried(
    retrying: MakeCoord, registry: ParticipantRegistry, clock: ManualClock, journal: Journal
) -> None:
    step = RecordingStep("pay", journal, action_failures=Failures(2, TransientError))
    registry.register("pay", lambda: step)
    coord = retrying()
    txid = coord.begin_transaction()
    coord.register_participant(txid, "pay")
    coord.commit_transaction(txid)
    assert journal.what("pay", txid) == ["action"] * 3
    assert_exponential(clock.slept, 2)


def test_saga_action_non_transient_error_is_not_retried(
    retrying: MakeCoord, clock: ManualClock, journal: Journal
) -> None:
    coord = retrying()
    calls: list[str] = []

    def charge(txid: str, data: object) -> None:
        calls.append("charge")
        raise ValueError("card declined")

    txid = coord.begin_transaction()
    coord.register_participant(txid, "pay", charge, lambda t: calls.append("refund"))
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)
    assert calls == ["charge", "refund"]
    assert clock.slept == []


def test_custom_transient_errors(retrying: MakeCoord, clock: ManualClock, journal: Journal) -> None:
    class Busy(Exception):
        pass

    coord = retrying(transient_errors=(Busy,))
    busy = RecordingParticipant("busy", journal, prepare_failures=Failures(1, Busy))
    refused = RecordingParticipant(
        "refused", journal, prepare_failures=Failures(1, lambda: ConnectionError("x"))
    )
    txid = one_participant_tx(coord, busy, refused)
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)
    assert isinstance(info.value.cause, ConnectionError)  # no longer transient
    assert busy.calls("prepare") == 2
    assert refused.calls("prepare") == 1
