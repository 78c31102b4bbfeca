"""Saga and one-phase rules, one test each."""

from __future__ import annotations

from dtc_wal.protocol import (
    Acknowledged,
    AppendFailed,
    CallFailed,
    Command,
    Commit,
    Decided,
    Durable,
    Ended,
    FailureKind,
    Finish,
    Machine,
    MemberState,
    Mode,
    Op,
    Options,
    Outcome,
    Rollback,
    StepDone,
    TxState,
    Vote,
)

from .helpers import appended, calls, decision, finish, kinds, machine, records


def test_saga_steps_run_in_order_each_durable_before_the_next() -> None:
    m = machine(Mode.SAGA)
    assert appended(m.handle(Commit(1.0, {"d": 1}))) == [(["Opened"], True)]
    assert calls(m.handle(Durable(1.0, 1))) == [(0, "action")]
    out = m.handle(Acknowledged(2.0, 0, Op.ACTION))
    assert appended(out) == [(["StepDone"], True)] and calls(out) == []
    assert calls(m.handle(Durable(2.0, 2))) == [(1, "action")]
    m.handle(Acknowledged(3.0, 1, Op.ACTION))
    assert calls(m.handle(Durable(3.0, 3))) == [(2, "action")]
    out = m.handle(Acknowledged(4.0, 2, Op.ACTION))
    # the last step's completion travels in the decision, and nothing is left to deliver
    assert appended(out) == [(["Decided", "Ended"], True)]
    out = m.handle(Durable(4.0, 4))
    assert kinds(out) == ["Decision", "Finish"] and finish(out) == Finish(Outcome.COMMIT)
    tx = m.transaction
    assert tx is not None and tx.state is TxState.COMMITTED
    assert [mm.state for mm in tx.members] == [MemberState.COMMITTED] * 3


def _fail_at(step: int, n: int = 4) -> tuple[Machine, list[Command]]:
    m = machine(Mode.SAGA, n=n)
    m.handle(Commit(1.0))
    m.handle(Durable(1.0, 1))
    for i in range(step):
        m.handle(Acknowledged(2.0, i, Op.ACTION))
        m.handle(Durable(2.0, i + 2))
    out = m.handle(CallFailed(3.0, step, Op.ACTION, "ValueError: no", 1, FailureKind.REFUSED))
    return m, out


def test_a_failed_step_compensates_itself_and_every_earlier_step_in_reverse() -> None:
    m, out = _fail_at(2)
    assert appended(out) == [(["Decided"], False)]
    decided = records(out)[0]
    assert isinstance(decided, Decided) and decided.reason == "saga step m2 failed (ValueError: no)"
    assert decided.votes == ()
    assert decision(out).outcome is Outcome.ABORT
    assert calls(out) == [(2, "compensate")]  # the step that failed may have done some work
    assert calls(m.handle(Acknowledged(4.0, 2, Op.COMPENSATE))) == [(1, "compensate")]
    assert calls(m.handle(Acknowledged(4.0, 1, Op.COMPENSATE))) == [(0, "compensate")]
    out = m.handle(Acknowledged(4.0, 0, Op.COMPENSATE))
    ((names, durable),) = appended(out)
    assert names == ["Ended"] and not durable
    ended = records(out)[0]
    assert isinstance(ended, Ended)
    assert ended.acks == (
        (3, MemberState.SKIPPED),
        (2, MemberState.ROLLED_BACK),
        (1, MemberState.ROLLED_BACK),
        (0, MemberState.ROLLED_BACK),
    )
    assert finish(out).member == 2 and finish(out).error == "ValueError: no"


def test_a_failing_compensation_is_recorded_and_the_rest_still_run() -> None:
    m, _ = _fail_at(1, n=3)
    out = m.handle(CallFailed(4.0, 1, Op.COMPENSATE, "IOError: down", 3))
    assert calls(out) == [(0, "compensate")]
    out = m.handle(Acknowledged(5.0, 0, Op.COMPENSATE))
    assert appended(out) == [(["Failed", "Acked"], False)]
    assert finish(out).pending == (1,) and finish(out).errors == ("IOError: down",)


def test_rollback_before_commit_runs_no_compensation() -> None:
    m = machine(Mode.SAGA)
    out = m.handle(Rollback(1.0, "rolled back by the caller"))
    assert appended(out) == [(["Opened", "Decided"], False), (["Ended"], False)]
    assert calls(out) == [] and finish(out).complete
    tx = m.transaction
    assert tx is not None and [mm.state for mm in tx.members] == [MemberState.SKIPPED] * 3


def test_a_step_record_that_cannot_be_logged_compensates_that_step() -> None:
    m = machine(Mode.SAGA, n=3)
    m.handle(Commit(1.0))
    m.handle(Durable(1.0, 1))
    m.handle(Acknowledged(2.0, 0, Op.ACTION))
    out = m.handle(AppendFailed(2.5, 2, "LogFullError: full"))
    assert calls(out) == [(0, "compensate")]  # it ran, though its record was not written
    out = m.handle(Acknowledged(3.0, 0, Op.COMPENSATE))
    assert appended(out) == []
    assert finish(out).reason == "a saga step could not be logged (LogFullError: full)"
    assert not any(isinstance(r, StepDone) for r in records(out))


def test_one_phase_forces_nothing_and_logs_its_history_in_one_lazy_append() -> None:
    m = machine(n=1, commit_one_phase=True)
    out = m.handle(Commit(1.0, {"d": 1}))
    assert appended(out) == [] and calls(out) == [(0, "commit_one_phase")]
    out = m.handle(Acknowledged(2.0, 0, Op.COMMIT_ONE_PHASE))
    assert appended(out) == [(["Opened", "Decided", "Ended"], False)]
    assert kinds(out)[1:] == ["Decision", "Finish"] and finish(out).complete
    decided = records(out)[1]
    assert isinstance(decided, Decided) and decided.votes == ((0, Vote.YES),)


def test_a_refused_one_phase_commit_aborts_and_sends_rollback() -> None:
    m = machine(n=1, commit_one_phase=True)
    m.handle(Commit(1.0))
    out = m.handle(CallFailed(2.0, 0, Op.COMMIT_ONE_PHASE, "VoteNo: no", 1))
    assert appended(out) == [(["Opened", "Decided"], False)]
    assert calls(out) == [(0, "rollback")]
    out = m.handle(Acknowledged(3.0, 0, Op.ROLLBACK))
    assert finish(out).reason == "m0 refused the one-phase commit (VoteNo: no)"


def test_one_phase_needs_the_option_and_a_lone_member() -> None:
    off = machine(n=1, options=Options(one_phase=False), commit_one_phase=True)
    assert appended(off.handle(Commit(1.0))) == [(["Opened"], True)]
    two = machine(n=2, commit_one_phase=True)
    assert appended(two.handle(Commit(1.0))) == [(["Opened"], True)]
