"""2PC rules, one test each: what is logged when, whom is called when, late answers,
read-only votes, timeouts and retry policies, failed appends, joining."""

from __future__ import annotations

import pytest

from dtc_wal.protocol import (
    PRESUMED_ABORT,
    Acknowledged,
    AppendFailed,
    Call,
    CallFailed,
    Commit,
    Decided,
    Decision,
    DuplicateMemberError,
    Durable,
    Ended,
    FailureKind,
    Finish,
    InvalidEventError,
    InvalidMemberError,
    InvalidOptionError,
    MemberSpec,
    MemberState,
    MixedModeError,
    Mode,
    Op,
    Opened,
    Options,
    Outcome,
    Recover,
    Retry,
    Rollback,
    TxState,
    Vote,
    Voted,
)

from .helpers import appended, calls, decision, finish, kinds, machine, of, records


def test_a_commit_step_by_step() -> None:
    """The worked example of docs/architecture.md, command by command."""
    m = machine(options=Options(prepare_timeout=5.0, phase2_timeout=30.0))
    out = m.handle(Commit(10.0, {"order": 7}))
    assert appended(out) == [(["Opened"], True)]  # forced: nothing is sent before its sync
    out = m.handle(Durable(10.1, 1))
    assert out == [Call(i, Op.PREPARE, 15.1, Retry.TRANSIENT) for i in range(3)]
    assert m.handle(Voted(10.2, 0)) == []
    assert m.handle(Voted(10.3, 2, Vote.YES)) == []
    out = m.handle(Voted(10.4, 1))
    assert appended(out) == [(["Decided"], True)]
    decided = records(out)[0]
    assert isinstance(decided, Decided) and decided.votes == (
        (0, Vote.YES),
        (1, Vote.YES),
        (2, Vote.YES),
    )
    out = m.handle(Durable(10.5, 2))
    assert out[0] == Decision(Outcome.COMMIT)  # a wait=False handle can go back here
    assert out[1:] == [Call(i, Op.COMMIT, 40.5, Retry.ANY) for i in range(3)]
    assert m.handle(Acknowledged(10.6, 1, Op.COMMIT)) == []
    assert m.handle(Acknowledged(10.7, 0, Op.COMMIT)) == []
    out = m.handle(Acknowledged(10.8, 2, Op.COMMIT))
    assert appended(out) == [(["Ended"], False)]  # lazy: losing it repeats a commit
    assert out[-1] == Finish(Outcome.COMMIT)
    tx = m.transaction
    assert tx is not None and tx.state is TxState.COMMITTED and not m.running
    assert tx.data == {"order": 7}


def test_every_member_lists_prepared_so_the_opening_rides_the_decisions_sync() -> None:
    m = machine(lists_prepared=True)
    out = m.handle(Commit(1.0))
    assert appended(out) == [(["Opened"], False)]
    assert calls(out) == [(0, "prepare"), (1, "prepare"), (2, "prepare")]
    for i in range(3):
        out = m.handle(Voted(2.0, i))
    assert appended(out) == [(["Decided"], True)]  # the one forced wait


def test_one_member_that_cannot_list_keeps_the_forced_opening() -> None:
    m = machine(n=0)
    m.enlist(MemberSpec("a"), Mode.TWO_PHASE, lists_prepared=True)
    m.enlist(MemberSpec("b"), Mode.TWO_PHASE)
    assert appended(m.handle(Commit(1.0))) == [(["Opened"], True)]


def test_a_durable_event_for_an_append_nobody_waits_for_is_refused() -> None:
    m = machine()
    m.handle(Commit(1.0))
    with pytest.raises(InvalidEventError, match="append 7 not awaited"):
        m.handle(Durable(2.0, 7))
    assert calls(m.handle(Durable(2.0, 1))) == [(0, "prepare"), (1, "prepare"), (2, "prepare")]


def test_a_no_vote_decides_abort_at_once_and_late_answers_are_no_votes() -> None:
    m = machine()
    m.handle(Commit(1.0))
    m.handle(Durable(1.0, 1))
    m.handle(Voted(2.0, 0))
    out = m.handle(CallFailed(3.0, 1, Op.PREPARE, "VoteNo: out of stock", 1, FailureKind.REFUSED))
    assert appended(out) == [(["Decided"], False)]  # an abort decision is lazy
    decided = records(out)[0]
    assert isinstance(decided, Decided) and decided.outcome is Outcome.ABORT
    assert decided.votes == ((0, Vote.YES),)
    assert decided.reason == "m1 voted no in prepare (VoteNo: out of stock)"
    assert decision(out) == Decision(Outcome.ABORT)
    # m2's prepare is still in flight: no rollback to it until it ends (one call at a time)
    assert calls(out) == [(0, "rollback"), (1, "rollback")]
    # its late yes is not a vote: it only frees m2 for its rollback
    assert calls(m.handle(Voted(4.0, 2))) == [(2, "rollback")]
    assert m.handle(Voted(4.0, 2)) == []  # and a repeat of it is ignored
    m.handle(Acknowledged(5.0, 0, Op.ROLLBACK))
    m.handle(Acknowledged(5.0, 1, Op.ROLLBACK))
    out = m.handle(Acknowledged(5.0, 2, Op.ROLLBACK))
    assert appended(out) == [(["Ended"], False)]
    assert finish(out) == Finish(
        Outcome.ABORT,
        (),
        (),
        "m1 voted no in prepare (VoteNo: out of stock)",
        1,
        "VoteNo: out of stock",
    )


def test_a_timed_out_prepare_decides_abort_too() -> None:
    m = machine(n=1)
    m.handle(Commit(1.0))
    m.handle(Durable(1.0, 1))
    out = m.handle(
        CallFailed(6.0, 0, Op.PREPARE, "ParticipantTimeoutError: 5s", 1, FailureKind.TIMED_OUT)
    )
    assert decision(out).outcome is Outcome.ABORT and calls(out) == [(0, "rollback")]


def test_a_read_only_voter_takes_no_part_in_phase_two() -> None:
    m = machine()
    m.handle(Commit(1.0))
    m.handle(Durable(1.0, 1))
    m.handle(Voted(2.0, 0, Vote.READ_ONLY))
    m.handle(Voted(2.0, 1))
    m.handle(Voted(2.0, 2))
    assert calls(m.handle(Durable(3.0, 2))) == [(1, "commit"), (2, "commit")]


def test_all_read_only_logs_the_commit_decision_and_ends_with_it() -> None:
    m = machine(n=2)
    m.handle(Commit(1.0))
    m.handle(Durable(1.0, 1))
    m.handle(Voted(2.0, 0, Vote.READ_ONLY))
    out = m.handle(Voted(2.0, 1, Vote.READ_ONLY))
    assert appended(out) == [(["Decided", "Ended"], True)]
    out = m.handle(Durable(3.0, 2))
    assert kinds(out) == ["Decision", "Finish"] and finish(out).complete


def test_an_empty_transaction_commits_in_one_forced_append() -> None:
    m = machine(n=0)
    out = m.handle(Commit(1.0))
    assert appended(out) == [(["Opened", "Decided", "Ended"], True)]
    assert kinds(m.handle(Durable(1.0, 1))) == ["Decision", "Finish"]


def test_no_timeout_gives_no_deadline() -> None:
    m = machine(n=1, options=Options(prepare_timeout=None, phase2_timeout=None))
    m.handle(Commit(1.0))
    assert m.handle(Durable(1.0, 1)) == [Call(0, Op.PREPARE, None, Retry.TRANSIENT)]


def test_a_failed_commit_is_recorded_left_pending_and_retried_by_recover() -> None:
    m = machine()
    m.handle(Commit(1.0))
    m.handle(Durable(1.0, 1))
    for i in range(3):
        m.handle(Voted(2.0, i))
    m.handle(Durable(3.0, 2))
    m.handle(Acknowledged(4.0, 0, Op.COMMIT))
    m.handle(CallFailed(4.0, 1, Op.COMMIT, "ConnectionError: down", 4, FailureKind.ERROR))
    out = m.handle(Acknowledged(4.0, 2, Op.COMMIT))
    assert appended(out) == [(["Failed", "Acked"], False)]
    assert finish(out) == Finish(Outcome.COMMIT, (1,), ("ConnectionError: down",))
    tx = m.transaction
    assert tx is not None and tx.state is TxState.DECIDED_COMMIT
    assert tx.members[1].attempts == 4 and tx.members[1].error == "ConnectionError: down"
    # the driver (or background recovery) asks again later: only the pending member
    out = m.handle(Recover(60.0))
    assert calls(out) == [(1, "commit")] and of(out, Decision) == []
    out = m.handle(Acknowledged(61.0, 1, Op.COMMIT))
    assert appended(out) == [(["Ended"], False)] and finish(out).complete


def test_rollback_before_commit_sends_rollback_to_every_member() -> None:
    m = machine()
    out = m.handle(Rollback(1.0, "rolled back by the caller"))
    assert appended(out) == [(["Opened", "Decided"], False)]  # nothing forced
    assert calls(out) == [(0, "rollback"), (1, "rollback"), (2, "rollback")]
    opened = records(out)[0]
    assert isinstance(opened, Opened) and opened.data is None
    for i in range(3):
        out = m.handle(Acknowledged(2.0, i, Op.ROLLBACK))
    assert finish(out).reason == "rolled back by the caller"


def test_a_zombie_reaper_rollback_carries_its_actor() -> None:
    m = machine(n=1)
    out = m.handle(Rollback(1.0, "zombie reaper: open for 301s", "reaper"))
    decided = records(out)[1]
    assert isinstance(decided, Decided) and decided.actor == "reaper"


def test_events_out_of_turn_are_refused() -> None:
    m = machine()
    m.handle(Commit(1.0))
    with pytest.raises(InvalidEventError, match="already committing"):
        m.handle(Commit(2.0))
    with pytest.raises(InvalidEventError, match="cannot be rolled back now"):
        m.handle(Rollback(2.0, "no"))
    with pytest.raises(InvalidEventError, match="join before commit"):
        m.enlist(MemberSpec("late"), Mode.TWO_PHASE)
    m.handle(Durable(2.0, 1))
    with pytest.raises(InvalidEventError, match="answered with Voted"):
        m.handle(Acknowledged(3.0, 0, Op.PREPARE))


def test_joining_rules() -> None:
    m = machine(n=1)
    with pytest.raises(DuplicateMemberError, match="'m0'"):
        m.enlist(MemberSpec("m0"), Mode.TWO_PHASE)
    with pytest.raises(MixedModeError, match="2pc transaction"):
        m.enlist(MemberSpec("step"), Mode.SAGA)
    with pytest.raises(InvalidMemberError, match="non-empty"):
        m.enlist(MemberSpec(""), Mode.TWO_PHASE)
    saga = machine(Mode.SAGA, n=0)
    with pytest.raises(InvalidMemberError, match="abilities of 2PC"):
        saga.enlist(MemberSpec("s"), Mode.SAGA, lists_prepared=True)
    assert m.enlist(MemberSpec("m1"), Mode.TWO_PHASE) == 1
    assert [s.name for s in m.members] == ["m0", "m1"]


def test_a_full_log_at_the_decision_aborts_and_rolls_back_all_but_read_only_voters() -> None:
    m = machine()
    m.handle(Commit(1.0))
    m.handle(Durable(1.0, 1))
    m.handle(Voted(2.0, 0))
    m.handle(Voted(2.0, 1, Vote.READ_ONLY))
    m.handle(Voted(2.0, 2))
    out = m.handle(AppendFailed(3.0, 2, "LogFullError: full"))
    assert appended(out) == []
    assert kinds(out) == ["Decision", "Call", "Call"]  # nothing more is appended
    assert decision(out).outcome is Outcome.ABORT
    assert calls(out) == [(0, "rollback"), (2, "rollback")]
    m.handle(Acknowledged(4.0, 0, Op.ROLLBACK))
    out = m.handle(Acknowledged(4.0, 2, Op.ROLLBACK))
    assert kinds(out) == ["Finish"]
    assert finish(out) == Finish(
        Outcome.ABORT,
        (),
        (),
        "the commit decision could not be logged (LogFullError: full)",
        None,
        "LogFullError: full",
    )
    tx = m.transaction  # what the log holds: the opening only
    assert tx is not None and tx.state is TxState.ACTIVE


def test_a_full_log_at_the_opening_calls_nobody() -> None:
    m = machine()
    m.handle(Commit(1.0))
    out = m.handle(AppendFailed(2.0, 1, "LogFullError: full"))
    assert kinds(out) == ["Decision", "Finish"]
    assert finish(out).reason == "the transaction could not be logged (LogFullError: full)"
    assert m.transaction is None


def test_a_lazy_append_that_fails_stops_further_appends() -> None:
    m = machine(lists_prepared=True)
    m.handle(Commit(1.0))
    assert m.handle(AppendFailed(1.5, 1, "LogFullError: full")) == []  # the lazy opening
    for i in range(2):
        m.handle(Voted(2.0, i))
    out = m.handle(Voted(2.0, 2))
    assert appended(out) == [] and decision(out).outcome is Outcome.ABORT
    assert calls(out) == [(0, "rollback"), (1, "rollback"), (2, "rollback")]


def test_presumed_abort_reason_is_the_documented_text() -> None:
    assert PRESUMED_ABORT == "presumed abort: no decision in the log when recovery found it"
    assert MemberState.READ_ONLY.settled and not MemberState.PREPARED.settled
    assert Ended("t", 1.0).acks == ()


def test_options_are_checked() -> None:
    with pytest.raises(InvalidOptionError, match="prepare_timeout must be positive"):
        Options(prepare_timeout=0)
    with pytest.raises(InvalidOptionError, match="phase2_timeout"):
        Options(phase2_timeout=-1.0)
    assert Options(prepare_timeout=None).prepare_timeout is None
