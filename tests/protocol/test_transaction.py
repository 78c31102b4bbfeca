"""The transition table of format 2: Transaction.apply and fold, rule by rule."""

from __future__ import annotations

import pytest

from dtc_wal.protocol import (
    Acked,
    Decided,
    Ended,
    Failed,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    Outcome,
    OutOfOrderError,
    Record,
    Resolved,
    StepDone,
    Transaction,
    TxState,
    Vote,
    fold,
)

S = MemberState
SPECS = (MemberSpec("a", "f", {"x": 1}), MemberSpec("b"), MemberSpec("c"))
YES3 = ((0, Vote.YES), (1, Vote.YES), (2, Vote.YES))


def opened(mode: Mode = Mode.TWO_PHASE, n: int = 3) -> Opened:
    return Opened("t", 1.0, mode, SPECS[:n], {"k": 1})


def test_a_two_phase_commit_in_three_records() -> None:
    tx = fold(
        [
            opened(),
            Decided("t", 2.0, Outcome.COMMIT, YES3),
            Ended("t", 3.0, ((0, S.COMMITTED), (1, S.COMMITTED), (2, S.COMMITTED))),
        ]
    )
    assert tx.state is TxState.COMMITTED and tx.ended
    assert [m.state for m in tx.members] == [S.COMMITTED] * 3
    assert tx.data == {"k": 1} and tx.members[0].params == {"x": 1}
    assert tx.opened_at == 1.0 and tx.decided_at == 2.0 and tx.updated_at == 3.0
    assert tx.members[0].recoverable and not tx.members[1].recoverable


def test_undecided_is_active_and_presumed_abort_is_the_readers_rule() -> None:
    tx = fold([opened()])
    assert tx.outcome is None and tx.state is TxState.ACTIVE
    assert tx.pending() == [0, 1, 2]


def test_votes_set_member_states_and_a_read_only_voter_is_settled() -> None:
    tx = fold([opened(), Decided("t", 2.0, Outcome.ABORT, ((0, Vote.YES), (1, Vote.READ_ONLY)))])
    assert [m.state for m in tx.members] == [S.PREPARED, S.READ_ONLY, S.ENLISTED]
    assert tx.pending() == [0, 2] and tx.state is TxState.DECIDED_ABORT
    tx.apply(Ended("t", 3.0, ((0, S.ROLLED_BACK), (2, S.ROLLED_BACK))))
    assert tx.state is TxState.ABORTED


def test_saga_commit_settles_every_step() -> None:
    tx = fold(
        [
            opened(Mode.SAGA),
            StepDone("t", 2.0, 0),
            StepDone("t", 3.0, 1),
            Decided("t", 4.0, Outcome.COMMIT),
            Ended("t", 4.0),
        ]
    )
    assert tx.state is TxState.COMMITTED
    assert [m.state for m in tx.members] == [S.COMMITTED] * 3


def test_saga_abort_acks_rollbacks_and_skips() -> None:
    tx = fold(
        [
            opened(Mode.SAGA),
            StepDone("t", 2.0, 0),
            Decided("t", 3.0, Outcome.ABORT, reason="step b failed"),
            Failed("t", 4.0, 0, Op.COMPENSATE, "down", 3),
            Acked("t", 4.0, ((1, S.ROLLED_BACK), (2, S.SKIPPED))),
        ]
    )
    assert [m.state for m in tx.members] == [S.STEP_DONE, S.ROLLED_BACK, S.SKIPPED]
    assert tx.members[0].attempts == 3 and tx.members[0].error == "down"
    assert tx.reason == "step b failed" and tx.pending() == [0]


def test_resolution_settles_and_keeps_the_operators_record() -> None:
    tx = fold([opened(n=1), Decided("t", 2.0, Outcome.COMMIT, ((0, Vote.YES),))])
    record = Resolved("t", 3.0, 0, Outcome.COMMIT, "alice", "committed by hand")
    tx.apply(record)
    assert tx.members[0].state is S.RESOLVED and tx.members[0].resolution == record
    tx.apply(Ended("t", 3.0))
    assert tx.state is TxState.COMMITTED


DECIDED_COMMIT = Decided("t", 2.0, Outcome.COMMIT, YES3)
REFUSED: list[tuple[str, list[Record], Record]] = [
    ("second opening", [opened()], opened()),
    ("other txid", [opened()], Decided("u", 2.0, Outcome.ABORT)),
    ("decided twice", [opened(), DECIDED_COMMIT], Decided("t", 3.0, Outcome.ABORT)),
    ("commit without every vote", [opened()], Decided("t", 2.0, Outcome.COMMIT, YES3[:2])),
    ("vote twice", [opened()], Decided("t", 2.0, Outcome.ABORT, ((0, Vote.YES),) * 2)),
    ("vote out of range", [opened()], Decided("t", 2.0, Outcome.ABORT, ((7, Vote.YES),))),
    ("saga votes", [opened(Mode.SAGA)], Decided("t", 2.0, Outcome.ABORT, ((0, Vote.YES),))),
    ("saga commit, step undone", [opened(Mode.SAGA)], Decided("t", 2.0, Outcome.COMMIT)),
    ("step out of order", [opened(Mode.SAGA)], StepDone("t", 2.0, 1)),
    ("step twice", [opened(Mode.SAGA), StepDone("t", 2.0, 0)], StepDone("t", 3.0, 0)),
    ("step in 2pc", [opened()], StepDone("t", 2.0, 0)),
    (
        "step after decision",
        [opened(Mode.SAGA), Decided("t", 2.0, Outcome.ABORT)],
        StepDone("t", 3.0, 0),
    ),
    ("ack before decision", [opened()], Acked("t", 2.0, ((0, S.COMMITTED),))),
    ("ack contradicts", [opened(), DECIDED_COMMIT], Acked("t", 3.0, ((0, S.ROLLED_BACK),))),
    (
        "ack twice in one",
        [opened(), DECIDED_COMMIT],
        Acked("t", 3.0, ((0, S.COMMITTED), (0, S.COMMITTED))),
    ),
    (
        "ack a settled member",
        [opened(), DECIDED_COMMIT, Acked("t", 3.0, ((0, S.COMMITTED),))],
        Acked("t", 4.0, ((0, S.COMMITTED),)),
    ),
    (
        "skip in 2pc",
        [opened(), Decided("t", 2.0, Outcome.ABORT)],
        Acked("t", 3.0, ((0, S.SKIPPED),)),
    ),
    (
        "skip a step that ran",
        [opened(Mode.SAGA), StepDone("t", 2.0, 0), Decided("t", 3.0, Outcome.ABORT)],
        Acked("t", 4.0, ((0, S.SKIPPED),)),
    ),
    ("ended with pending", [opened(), DECIDED_COMMIT], Ended("t", 3.0, ((0, S.COMMITTED),))),
    ("ended before decision", [opened()], Ended("t", 2.0)),
    (
        "after ended",
        [opened(n=1), Decided("t", 2.0, Outcome.ABORT), Ended("t", 3.0, ((0, S.ROLLED_BACK),))],
        Failed("t", 4.0, 0, Op.ROLLBACK, "x", 1),
    ),
    ("resolve before decision", [opened()], Resolved("t", 2.0, 0, Outcome.ABORT, "a", "r")),
    (
        "resolve a settled member",
        [opened(), Decided("t", 2.0, Outcome.ABORT, ((0, Vote.READ_ONLY),))],
        Resolved("t", 3.0, 0, Outcome.ABORT, "a", "r"),
    ),
    ("failed negative", [opened()], Failed("t", 2.0, 0, Op.PREPARE, "x", -1)),
    ("failed out of range", [opened()], Failed("t", 2.0, 3, Op.PREPARE, "x", 1)),
]


@pytest.mark.parametrize(
    ("before", "record"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_record_out_of_order_is_refused_and_changes_nothing(
    before: list[Record], record: Record
) -> None:
    tx = fold(before)
    copy = tx.copy()
    with pytest.raises(OutOfOrderError, match="transaction t"):
        tx.apply(record)
    assert tx == copy


def test_fold_needs_an_opening_first() -> None:
    with pytest.raises(OutOfOrderError, match="no records"):
        fold([])
    with pytest.raises(OutOfOrderError, match="first record is Decided"):
        fold([Decided("t", 1.0, Outcome.ABORT)])
    with pytest.raises(OutOfOrderError, match="unique"):
        Transaction.open(Opened("t", 1.0, Mode.TWO_PHASE, (MemberSpec("a"), MemberSpec("a"))))


def test_the_message_names_the_transaction_the_record_and_the_rule() -> None:
    with pytest.raises(OutOfOrderError) as info:
        fold([opened(), Decided("t", 2.0, Outcome.COMMIT, YES3[:2])])
    assert str(info.value) == (
        "transaction t: Decided refused in state active: commit needs every vote; none from c"
    )
