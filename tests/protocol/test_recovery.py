"""Machines seeded from a folded transaction: presumed abort, re-sending a decided outcome,
saga compensation after a crash, operator decisions and resolutions."""

from __future__ import annotations

import pytest

from dtc_wal.protocol import (
    PRESUMED_ABORT,
    Acked,
    Acknowledged,
    AppendFailed,
    Decided,
    Decision,
    Durable,
    Ended,
    InvalidEventError,
    Machine,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    Outcome,
    Record,
    Recover,
    Resolve,
    Resolved,
    Rollback,
    StepDone,
    TxState,
    Vote,
    fold,
)

from .helpers import appended, calls, decision, finish, kinds, records

SPECS = tuple(MemberSpec(f"m{i}", "f", {"i": i}) for i in range(3))
YES3 = ((0, Vote.YES), (1, Vote.YES), (2, Vote.YES))


def seeded(*records: Record, mode: Mode = Mode.TWO_PHASE) -> Machine:
    return Machine.recover(fold([Opened("tx", 1.0, mode, SPECS, {"d": 1}), *records]))


def test_undecided_2pc_is_presumed_aborted_and_every_member_rolled_back() -> None:
    m = seeded()
    assert not m.running and m.outcome is None
    out = m.handle(Recover(5.0))
    assert appended(out) == [(["Decided"], False)]
    decided = records(out)[0]
    assert isinstance(decided, Decided) and decided.reason == PRESUMED_ABORT
    assert decision(out) == Decision(Outcome.ABORT)
    # votes travel in the decision: none are on disk, so everyone may hold prepared work
    assert calls(out) == [(0, "rollback"), (1, "rollback"), (2, "rollback")]


def test_a_decided_commit_is_resent_to_the_pending_members_only() -> None:
    m = seeded(
        Decided("tx", 2.0, Outcome.COMMIT, YES3), Acked("tx", 3.0, ((1, MemberState.COMMITTED),))
    )
    out = m.handle(Recover(5.0))
    assert kinds(out) == ["Decision", "Call", "Call"]
    assert calls(out) == [(0, "commit"), (2, "commit")]
    m.handle(Acknowledged(6.0, 0, Op.COMMIT))
    out = m.handle(Acknowledged(6.0, 2, Op.COMMIT))
    assert appended(out) == [(["Ended"], False)] and finish(out).complete


def test_a_decided_abort_keeps_its_reason() -> None:
    m = seeded(Decided("tx", 2.0, Outcome.ABORT, ((1, Vote.READ_ONLY),), "m0 voted no"))
    out = m.handle(Recover(5.0))
    assert calls(out) == [(0, "rollback"), (2, "rollback")]  # the read-only voter is done
    m.handle(Acknowledged(6.0, 0, Op.ROLLBACK))
    out = m.handle(Acknowledged(6.0, 2, Op.ROLLBACK))
    assert finish(out).reason == "m0 voted no" and finish(out).member is None


def test_an_undecided_saga_compensates_the_done_steps_and_the_first_without_a_record() -> None:
    m = seeded(StepDone("tx", 2.0, 0), mode=Mode.SAGA)
    out = m.handle(Recover(5.0))
    assert calls(out) == [(1, "compensate")]  # it may have run: its record was not needed yet
    assert calls(m.handle(Acknowledged(6.0, 1, Op.COMPENSATE))) == [(0, "compensate")]
    out = m.handle(Acknowledged(6.0, 0, Op.COMPENSATE))
    ended = records(out)[0]
    assert isinstance(ended, Ended) and (2, MemberState.SKIPPED) in ended.acks


def test_a_saga_without_any_step_record_compensates_its_first_step() -> None:
    out = seeded(mode=Mode.SAGA).handle(Recover(5.0))
    assert calls(out) == [(0, "compensate")]


def test_a_seeded_machine_works_on_a_copy() -> None:
    tx = fold([Opened("tx", 1.0, Mode.TWO_PHASE, SPECS)])
    m = Machine.recover(tx)
    m.handle(Recover(2.0))
    assert tx.state is TxState.ACTIVE
    assert m.transaction is not None and m.transaction.state is TxState.DECIDED_ABORT


def test_an_ended_transaction_has_nothing_to_recover() -> None:
    ended = fold(
        [
            Opened("tx", 1.0, Mode.TWO_PHASE, SPECS[:1]),
            Decided("tx", 2.0, Outcome.ABORT),
            Ended("tx", 3.0, ((0, MemberState.ROLLED_BACK),)),
        ]
    )
    with pytest.raises(InvalidEventError, match="has ended"):
        Machine.recover(ended)


def test_recover_is_refused_while_a_round_runs() -> None:
    m = seeded()
    m.handle(Recover(5.0))
    with pytest.raises(InvalidEventError, match="nothing to recover now"):
        m.handle(Recover(6.0))


def test_an_operator_abort_is_durable_first_and_delivered_by_recover() -> None:
    m = seeded()
    out = m.handle(Rollback(5.0, "stuck since Monday", "alice@ops"))
    assert appended(out) == [(["Decided"], True)] and calls(out) == []
    out = m.handle(Durable(5.1, 1))
    assert kinds(out) == ["Decision", "Finish"]
    assert finish(out).pending == (0, 1, 2) and finish(out).reason == "stuck since Monday"
    decided = m.transaction and m.transaction.actor
    assert decided == "alice@ops"
    assert calls(m.handle(Recover(6.0))) == [(0, "rollback"), (1, "rollback"), (2, "rollback")]


def test_a_decided_transaction_cannot_be_rolled_back_by_an_operator() -> None:
    m = seeded(Decided("tx", 2.0, Outcome.COMMIT, YES3))
    with pytest.raises(InvalidEventError, match="cannot be rolled back"):
        m.handle(Rollback(5.0, "no", "alice"))


def test_resolving_every_pending_member_ends_the_transaction() -> None:
    m = seeded(Decided("tx", 2.0, Outcome.COMMIT, YES3))
    out = m.handle(Resolve(5.0, None, Outcome.COMMIT, "alice", "committed by hand"))
    assert appended(out) == [(["Resolved", "Resolved", "Resolved", "Ended"], True)]
    out = m.handle(Durable(5.1, 1))
    assert kinds(out) == ["Decision", "Finish"] and finish(out).complete
    assert m.transaction is not None and m.transaction.state is TxState.COMMITTED


def test_resolving_one_member_leaves_the_others_pending() -> None:
    m = seeded(Decided("tx", 2.0, Outcome.COMMIT, YES3))
    out = m.handle(Resolve(5.0, 1, Outcome.COMMIT, "alice", "ticket OPS-1"))
    resolved = records(out)[0]
    assert resolved == Resolved("tx", 5.0, 1, Outcome.COMMIT, "alice", "ticket OPS-1")
    assert finish(m.handle(Durable(5.1, 1))).pending == (0, 2)
    assert calls(m.handle(Recover(6.0))) == [(0, "commit"), (2, "commit")]


def test_a_resolution_against_the_outcome_must_be_marked_heuristic() -> None:
    m = seeded(Decided("tx", 2.0, Outcome.ABORT))
    with pytest.raises(InvalidEventError, match="heuristic"):
        m.handle(Resolve(5.0, 0, Outcome.COMMIT, "alice", "it committed on its own"))
    out = m.handle(Resolve(5.0, 0, Outcome.COMMIT, "alice", "it committed on its own", True))
    assert appended(out) == [(["Resolved"], True)]


@pytest.mark.parametrize(
    ("records_", "event", "match"),
    [
        ((), Resolve(5.0, 0, Outcome.ABORT, "a", "r"), "no decision yet"),
        (
            (Decided("tx", 2.0, Outcome.ABORT, ((0, Vote.READ_ONLY),)),),
            Resolve(5.0, 0, Outcome.ABORT, "a", "r"),
            "not pending",
        ),
        ((Decided("tx", 2.0, Outcome.ABORT),), Resolve(5.0, 0, Outcome.ABORT, "a", " "), "why"),
    ],
    ids=["undecided", "settled", "no-reason"],
)
def test_resolutions_refused(records_: tuple[Record, ...], event: Resolve, match: str) -> None:
    m = seeded(*records_)
    with pytest.raises(InvalidEventError, match=match):
        m.handle(event)


def test_no_resolution_while_a_round_runs() -> None:
    m = seeded(Decided("tx", 2.0, Outcome.COMMIT, YES3))
    m.handle(Recover(5.0))
    with pytest.raises(InvalidEventError, match="being driven"):
        m.handle(Resolve(5.0, 0, Outcome.COMMIT, "a", "r"))


def test_an_operators_record_that_cannot_be_logged_finishes_the_run() -> None:
    m = seeded()
    m.handle(Rollback(5.0, "by hand", "alice"))
    out = m.handle(AppendFailed(5.1, 1, "LogFullError: full"))
    assert kinds(out) == ["Decision", "Finish"]  # still abort: by presumption
    assert finish(out).error == "LogFullError: full"
    with pytest.raises(InvalidEventError, match="an append failed"):
        m.handle(Recover(6.0))
