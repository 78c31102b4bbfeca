"""The transition table (dtc_wal/history.py): every allowed path, a broad sample of refused
records, and that a refused record changes nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from dtc_wal.history import TransactionView, replay
from dtc_wal.records import LogRecord
from helpers import record

from dtc_wal.errors import InvalidTransitionError
from dtc_wal.states import Mode, Outcome, ParticipantState, RecordType, TxState

R = RecordType
TX = "tx-1"


def rec(kind: RecordType, participant: str | None = None, **fields: Any) -> LogRecord:
    return record(kind, TX, at=100.0, participant=participant, **fields)


def enlist(name: str, mode: Mode = Mode.TWO_PHASE, order: int | None = None) -> LogRecord:
    return rec(R.ENLISTED, name, mode=mode, order=order)


def ack(name: str, outcome: Outcome) -> LogRecord:
    return rec(R.ACKNOWLEDGED, name, outcome=outcome)


def build(*records: LogRecord) -> TransactionView:
    """Replay BEGUN followed by ``records`` (each must be accepted)."""
    return replay(enumerate([rec(R.BEGUN), *records], start=1))


def snapshot(view: TransactionView) -> dict[str, Any]:
    return dataclasses.asdict(view)


# --- allowed paths --------------------------------------------------------------------

TWO_PC = [enlist("a"), enlist("b")]
SAGA = [enlist("s1", Mode.SAGA), enlist("s2", Mode.SAGA), enlist("s3", Mode.SAGA)]

ALLOWED: dict[str, tuple[list[LogRecord], TxState]] = {
    "2pc-commit": (
        [
            *TWO_PC,
            rec(R.PREPARED, "a"),
            rec(R.PREPARED, "b"),
            rec(R.DECIDED_COMMIT, data={"k": 1}),
            ack("b", Outcome.COMMIT),
            ack("a", Outcome.COMMIT),
            rec(R.COMPLETED),
        ],
        TxState.COMMITTED,
    ),
    "2pc-abort-before-prepare": (
        [
            *TWO_PC,
            rec(R.DECIDED_ABORT, reason="caller"),
            ack("a", Outcome.ROLLBACK),
            ack("b", Outcome.ROLLBACK),
            rec(R.COMPLETED),
        ],
        TxState.ABORTED,
    ),
    "2pc-abort-after-one-yes": (
        [
            *TWO_PC,
            rec(R.PREPARED, "a"),
            rec(R.DECIDED_ABORT, reason="b voted no"),
            ack("a", Outcome.ROLLBACK),
            ack("b", Outcome.ROLLBACK),
            rec(R.COMPLETED),
        ],
        TxState.ABORTED,
    ),
    "2pc-commit-after-failed-attempts": (
        [
            *TWO_PC,
            rec(R.PREPARED, "a"),
            rec(R.PREPARED, "b"),
            rec(R.DECIDED_COMMIT),
            ack("a", Outcome.COMMIT),
            rec(R.FAILED, "b", error="ConnectionError: down", attempts=4),
            rec(R.FAILED, "b", error="ConnectionError: down", attempts=1),
            ack("b", Outcome.COMMIT),
            rec(R.COMPLETED),
        ],
        TxState.COMMITTED,
    ),
    "2pc-operator-resolution": (
        [
            *TWO_PC,
            rec(R.PREPARED, "a"),
            rec(R.PREPARED, "b"),
            rec(R.DECIDED_COMMIT),
            ack("a", Outcome.COMMIT),
            rec(R.RESOLVED, "b", outcome=Outcome.COMMIT, actor="alice", reason="host gone"),
            rec(R.COMPLETED),
        ],
        TxState.COMMITTED,
    ),
    "empty-commit": ([rec(R.DECIDED_COMMIT), rec(R.COMPLETED)], TxState.COMMITTED),
    "empty-abort": ([rec(R.DECIDED_ABORT), rec(R.COMPLETED)], TxState.ABORTED),
    "saga-commit": (
        [
            *SAGA,
            rec(R.PREPARED, "s1"),
            rec(R.PREPARED, "s2"),
            rec(R.PREPARED, "s3"),
            rec(R.DECIDED_COMMIT),
            ack("s1", Outcome.COMMIT),
            ack("s2", Outcome.COMMIT),
            ack("s3", Outcome.COMMIT),
            rec(R.COMPLETED),
        ],
        TxState.COMMITTED,
    ),
    "saga-abort-at-step-2": (
        [
            *SAGA,
            rec(R.PREPARED, "s1"),
            rec(R.DECIDED_ABORT, reason="s2 failed"),
            ack("s3", Outcome.SKIP),
            ack("s2", Outcome.ROLLBACK),
            ack("s1", Outcome.ROLLBACK),
            rec(R.COMPLETED),
        ],
        TxState.ABORTED,
    ),
    "saga-rollback-before-any-step": (
        [
            *SAGA,
            rec(R.DECIDED_ABORT),
            ack("s3", Outcome.SKIP),
            ack("s2", Outcome.SKIP),
            ack("s1", Outcome.SKIP),
            rec(R.COMPLETED),
        ],
        TxState.ABORTED,
    ),
}


@pytest.mark.parametrize("path", list(ALLOWED))
def test_allowed_path(path: str) -> None:
    records, final = ALLOWED[path]
    view = build(*records)
    assert view.state is final
    assert view.state.finished
    assert view.pending() == []
    assert view.lsns == list(range(1, len(records) + 2))


def test_states_along_a_2pc_commit() -> None:
    view = TransactionView.begin(rec(R.BEGUN), lsn=1)
    assert (view.state, view.mode, view.outcome) == (TxState.ACTIVE, None, None)
    view.apply(enlist("a"), 2)
    view.apply(enlist("b"), 3)
    assert view.mode is Mode.TWO_PHASE
    assert [p.name for p in view.ordered()] == ["a", "b"]
    assert view.participants["a"].state is ParticipantState.ENLISTED
    view.apply(rec(R.PREPARED, "a"), 4)
    view.apply(rec(R.PREPARED, "b"), 5)
    assert view.participants["b"].state is ParticipantState.PREPARED
    view.apply(record(R.DECIDED_COMMIT, TX, at=200.0, actor="coord"), 6)
    assert view.state is TxState.DECIDED_COMMIT
    assert view.state.decided and not view.state.finished
    assert view.outcome is Outcome.COMMIT
    assert (view.decided_at, view.decided_by) == (200.0, "coord")
    assert [p.name for p in view.pending()] == ["a", "b"]
    view.apply(ack("a", Outcome.COMMIT), 7)
    assert view.participants["a"].state is ParticipantState.COMMITTED
    assert [p.name for p in view.pending()] == ["b"]
    view.apply(ack("b", Outcome.COMMIT), 8)
    view.apply(record(R.COMPLETED, TX, at=300.0), 9)
    assert view.state is TxState.COMMITTED
    assert view.outcome is Outcome.COMMIT
    assert view.updated_at == 300.0
    assert view.lsns == list(range(1, 10))
    assert view.summary() == {
        "s": "committed",
        "m": "2pc",
        "c": 100.0,
        "u": 300.0,
        "l": list(range(1, 10)),
        "p": {"a": "committed", "b": "committed"},
    }


def test_enlisted_keeps_order_factory_and_params() -> None:
    view = build(
        rec(R.ENLISTED, "late", mode=Mode.SAGA, order=5, factory="f", params={"x": 1}),
        rec(R.ENLISTED, "early", mode=Mode.SAGA, order=1),
    )
    assert [p.name for p in view.ordered()] == ["early", "late"]
    late = view.participants["late"]
    assert (late.factory, late.params, late.recoverable) == ("f", {"x": 1}, True)
    assert view.participants["early"].recoverable is False


def test_failed_counts_attempts_and_keeps_last_error() -> None:
    view = build(*TWO_PC, rec(R.DECIDED_ABORT))
    view.apply(rec(R.FAILED, "a", error="first", attempts=4))
    view.apply(rec(R.FAILED, "a", error="second"))
    part = view.participants["a"]
    assert (part.attempts, part.last_error) == (5, "second")
    assert part.state is ParticipantState.ENLISTED


def test_resolution_records_who_and_what() -> None:
    view = build(*TWO_PC, rec(R.DECIDED_ABORT))
    view.apply(rec(R.RESOLVED, "a", outcome=Outcome.ROLLBACK, actor="bob", reason="gone"))
    part = view.participants["a"]
    assert part.state is ParticipantState.RESOLVED and part.state.done
    assert (part.resolution, part.resolved_by, part.last_error) == (
        Outcome.ROLLBACK,
        "bob",
        "gone",
    )


# --- refused records ------------------------------------------------------------------

PREPARED_2PC = [*TWO_PC, rec(R.PREPARED, "a"), rec(R.PREPARED, "b")]
COMMITTED_2PC = [
    *PREPARED_2PC,
    rec(R.DECIDED_COMMIT),
    ack("a", Outcome.COMMIT),
    ack("b", Outcome.COMMIT),
    rec(R.COMPLETED),
]

REFUSED: dict[str, tuple[list[LogRecord], LogRecord, str]] = {
    "second-begun": ([], rec(R.BEGUN), "exactly one BEGUN"),
    "commit-with-unprepared": (
        [*TWO_PC, rec(R.PREPARED, "a")],
        rec(R.DECIDED_COMMIT),
        "not prepared: b",
    ),
    "commit-with-nobody-prepared": (TWO_PC, rec(R.DECIDED_COMMIT), "not prepared: a, b"),
    "ack-before-decision": (PREPARED_2PC, ack("a", Outcome.COMMIT), "follow the decision"),
    "rollback-ack-before-decision": (TWO_PC, ack("a", Outcome.ROLLBACK), "follow the decision"),
    "duplicate-enlisted": (TWO_PC, enlist("a"), "unique"),
    "enlisted-without-name": ([], rec(R.ENLISTED, mode=Mode.TWO_PHASE), "present and unique"),
    "enlisted-without-mode": ([], rec(R.ENLISTED, "a"), "mode"),
    "enlisted-mode-mismatch": (TWO_PC, enlist("c", Mode.SAGA), "mode"),
    "enlisted-after-decision": (
        [*TWO_PC, rec(R.DECIDED_ABORT)],
        enlist("c"),
        "before the decision",
    ),
    "prepared-unknown": (TWO_PC, rec(R.PREPARED, "zz"), "no such participant"),
    "prepared-without-name": (TWO_PC, rec(R.PREPARED), "no such participant"),
    "prepared-twice": ([*TWO_PC, rec(R.PREPARED, "a")], rec(R.PREPARED, "a"), "prepares once"),
    "prepared-after-abort": ([*TWO_PC, rec(R.DECIDED_ABORT)], rec(R.PREPARED, "a"), "once"),
    "decided-twice": ([*PREPARED_2PC, rec(R.DECIDED_COMMIT)], rec(R.DECIDED_COMMIT), "once"),
    "abort-after-commit": ([*PREPARED_2PC, rec(R.DECIDED_COMMIT)], rec(R.DECIDED_ABORT), "once"),
    "commit-after-abort": ([*PREPARED_2PC, rec(R.DECIDED_ABORT)], rec(R.DECIDED_COMMIT), "once"),
    "rollback-ack-after-commit": (
        [*PREPARED_2PC, rec(R.DECIDED_COMMIT)],
        ack("a", Outcome.ROLLBACK),
        "contradicts the decision",
    ),
    "commit-ack-after-abort": (
        [*PREPARED_2PC, rec(R.DECIDED_ABORT)],
        ack("a", Outcome.COMMIT),
        "contradicts the decision",
    ),
    "ack-without-outcome": (
        [*PREPARED_2PC, rec(R.DECIDED_ABORT)],
        rec(R.ACKNOWLEDGED, "a"),
        "contradicts the decision",
    ),
    "ack-twice": (
        [*PREPARED_2PC, rec(R.DECIDED_COMMIT), ack("a", Outcome.COMMIT)],
        ack("a", Outcome.COMMIT),
        "already acknowledged",
    ),
    "skip-on-2pc-participant": (
        [*TWO_PC, rec(R.DECIDED_ABORT)],
        ack("a", Outcome.SKIP),
        "only a saga step that never ran",
    ),
    "skip-on-saga-step-that-ran": (
        [*SAGA, rec(R.PREPARED, "s1"), rec(R.DECIDED_ABORT)],
        ack("s1", Outcome.SKIP),
        "only a saga step that never ran",
    ),
    "saga-step-out-of-order": (SAGA, rec(R.PREPARED, "s2"), "registration order"),
    "saga-step-skips-one": (
        [*SAGA, rec(R.PREPARED, "s1")],
        rec(R.PREPARED, "s3"),
        "registration order",
    ),
    "completed-before-decision": (PREPARED_2PC, rec(R.COMPLETED), "after its decision"),
    "completed-with-pending": (
        [*PREPARED_2PC, rec(R.DECIDED_COMMIT), ack("a", Outcome.COMMIT)],
        rec(R.COMPLETED),
        "still pending: b",
    ),
    "resolved-before-decision": (
        PREPARED_2PC,
        rec(R.RESOLVED, "a", outcome=Outcome.COMMIT),
        "decide the transaction",
    ),
    "resolved-after-ack": (
        [*PREPARED_2PC, rec(R.DECIDED_COMMIT), ack("a", Outcome.COMMIT)],
        rec(R.RESOLVED, "a", outcome=Outcome.COMMIT),
        "already acknowledged",
    ),
    "resolved-as-skip": (
        [*PREPARED_2PC, rec(R.DECIDED_COMMIT)],
        rec(R.RESOLVED, "a", outcome=Outcome.SKIP),
        "commit or rollback",
    ),
    "failed-unknown-participant": ([*TWO_PC], rec(R.FAILED, "zz", error="x"), "no such"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_record_changes_nothing(case: str) -> None:
    prefix, bad, why = REFUSED[case]
    view = build(*prefix)
    before = snapshot(view)
    with pytest.raises(InvalidTransitionError, match=why) as info:
        view.apply(bad, lsn=999)
    assert TX in str(info.value)
    assert snapshot(view) == before
    assert isinstance(info.value, ValueError)


AFTER_COMPLETED = [
    rec(R.BEGUN),
    enlist("c"),
    rec(R.PREPARED, "a"),
    rec(R.DECIDED_COMMIT),
    rec(R.DECIDED_ABORT),
    ack("a", Outcome.COMMIT),
    rec(R.COMPLETED),
    rec(R.FAILED, "a", error="late"),
    rec(R.RESOLVED, "a", outcome=Outcome.COMMIT),
]


def test_after_completed_list_covers_every_record_type() -> None:
    assert {r.type for r in AFTER_COMPLETED} == set(RecordType)


@pytest.mark.parametrize("bad", AFTER_COMPLETED, ids=lambda r: r.type.name)
def test_nothing_is_accepted_after_completed(bad: LogRecord) -> None:
    view = build(*COMMITTED_2PC)
    before = snapshot(view)
    with pytest.raises(InvalidTransitionError):
        view.apply(bad, lsn=999)
    assert snapshot(view) == before


def test_record_of_another_transaction_is_refused() -> None:
    view = build(*TWO_PC)
    before = snapshot(view)
    with pytest.raises(InvalidTransitionError, match="tx-other"):
        view.apply(record(R.PREPARED, "tx-other", participant="a"))
    assert snapshot(view) == before


@pytest.mark.parametrize("kind", [k for k in RecordType if k is not R.BEGUN])
def test_history_must_start_with_begun(kind: RecordType) -> None:
    with pytest.raises(InvalidTransitionError, match="expected BEGUN"):
        TransactionView.begin(rec(kind, "a"))


def test_replay_of_nothing_is_refused() -> None:
    with pytest.raises(InvalidTransitionError):
        replay([])


def test_replay_stops_at_the_first_impossible_record() -> None:
    records = [rec(R.BEGUN), enlist("a"), ack("a", Outcome.COMMIT)]
    with pytest.raises(InvalidTransitionError, match="ACKNOWLEDGED"):
        replay(enumerate(records, start=1))
