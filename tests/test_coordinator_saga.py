"""Ordered sagas through the public coordinator, on a real log: seed 2, order of actions and
compensations, skipped steps, failing compensations, registry-built steps."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import FOREVER, Failures, Journal, RecordingStep, saga_functions

from dtc_wal import (
    ParticipantRegistry,
    TransactionAborted,
    TransactionCoordinator,
    TxState,
)
from dtc_wal.errors import ParticipantTimeoutError, TransactionFinishedError
from dtc_wal.protocol import Decided, Ended, MemberState, Mode, Opened, Outcome, Record, StepDone

SERVICES = ["order", "payment", "inventory", "notification"]


def logged(coord: TransactionCoordinator, txid: str) -> list[Record]:
    """Every record of the transaction, lazy ones included (flushed first)."""
    coord.flush()
    found = coord.log.read(txid)
    assert found is not None and found.damage is None
    return list(found.records)


def test_seed_2(coord: TransactionCoordinator) -> None:
    """The issue's second example, as written, with the calls' arguments recorded."""
    calls: list[tuple[Any, ...]] = []

    def create_order(txid: str, data: Mapping[str, Any]) -> None:
        calls.append(("create_order", txid, dict(data)))

    def cancel_order(txid: str) -> None:
        calls.append(("cancel_order", txid))

    def charge(txid: str, data: Mapping[str, Any]) -> None:
        calls.append(("charge", txid, dict(data)))

    def refund(txid: str) -> None:
        calls.append(("refund", txid))

    txid = coord.begin_transaction()
    coord.register_participant(txid, "order", create_order, cancel_order)
    coord.register_participant(txid, "payment", charge, refund)
    coord.commit_transaction(txid)  # runs commit functions in registration order

    assert calls == [("create_order", txid, {}), ("charge", txid, {})]
    assert coord.state(txid) is TxState.COMMITTED
    view = coord.transaction(txid)
    assert [p.name for p in view.ordered()] == ["order", "payment"]
    assert {p.state for p in view.participants.values()} == {MemberState.COMMITTED}
    # a finished saga cannot be rolled back afterwards
    with pytest.raises(TransactionFinishedError):
        coord.rollback_transaction(txid)
    assert len(calls) == 2


def test_seed_2_failure_rolls_back_automatically(coord: TransactionCoordinator) -> None:
    calls: list[tuple[Any, ...]] = []

    def create_order(txid: str, data: Mapping[str, Any]) -> None:
        calls.append(("create_order", txid))

    def cancel_order(txid: str) -> None:
        calls.append(("cancel_order", txid))

    def charge(txid: str, data: Mapping[str, Any]) -> None:
        calls.append(("charge", txid))
        raise ValueError("card declined")

    def refund(txid: str) -> None:
        calls.append(("refund", txid))

    txid = coord.begin_transaction()
    coord.register_participant(txid, "order", create_order, cancel_order)
    coord.register_participant(txid, "payment", charge, refund)
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)

    assert isinstance(info.value.cause, ValueError)
    assert "payment" in info.value.reason
    assert calls == [
        ("create_order", txid),
        ("charge", txid),
        ("refund", txid),
        ("cancel_order", txid),
    ]
    assert coord.state(txid) is TxState.ABORTED


def test_commit_functions_run_in_registration_order_with_data(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    txid = coord.begin_transaction()
    for name in SERVICES:
        coord.register_participant(txid, name, *saga_functions(name, journal))
    coord.commit_transaction(txid, data={"order_id": 42})
    assert journal.of(txid) == [(name, "commit") for name in SERVICES]
    assert coord.state(txid) is TxState.COMMITTED
    # Format 2: Opened (every step, in order, with the data), a StepDone per step but the
    # last (whose completion travels in the commit decision), Decided commit, Ended.
    records = logged(coord, txid)
    assert [type(r) for r in records] == [Opened, StepDone, StepDone, StepDone, Decided, Ended]
    opened = records[0]
    assert isinstance(opened, Opened)
    assert [m.name for m in opened.members] == SERVICES
    assert opened.mode is Mode.SAGA
    assert opened.data == {"order_id": 42}
    assert [r.index for r in records if isinstance(r, StepDone)] == [0, 1, 2]
    decided = records[4]
    assert isinstance(decided, Decided) and decided.outcome is Outcome.COMMIT


def test_each_step_is_durable_before_the_next_starts(coord: TransactionCoordinator) -> None:
    """Each action sees, in the log (read without a flush: only what the writer committed),
    the Opened record and a StepDone for every step before it."""
    seen: list[list[tuple[type, int | None]]] = []

    def look(txid: str, data: Mapping[str, Any]) -> None:
        found = coord.log.read(txid)
        assert found is not None
        seen.append([(type(r), getattr(r, "index", None)) for r in found.records])

    txid = coord.begin_transaction()
    for name in ("one", "two", "three"):
        coord.register_participant(txid, name, look, lambda t: None)
    coord.commit_transaction(txid)
    opening = [(Opened, None)]
    assert seen == [
        opening,
        [*opening, (StepDone, 0)],
        [*opening, (StepDone, 0), (StepDone, 1)],
    ]


def test_failing_step_compensates_in_reverse_and_skips_unstarted(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    txid = coord.begin_transaction()
    for name in SERVICES:
        coord.register_participant(
            txid, name, *saga_functions(name, journal, fail=name == "inventory")
        )
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)

    assert isinstance(info.value.cause, RuntimeError)
    assert "inventory" in info.value.reason
    assert info.value.pending == ()
    assert journal.of(txid) == [
        ("order", "commit"),
        ("payment", "commit"),
        ("inventory", "commit"),  # fails: decides abort
        ("inventory", "rollback"),
        ("payment", "rollback"),
        ("order", "rollback"),
    ]
    assert journal.what("notification", txid) == []  # never started, never compensated
    assert coord.state(txid) is TxState.ABORTED
    view = coord.transaction(txid)
    assert {p.name: p.state for p in view.participants.values()} == {
        "order": MemberState.ROLLED_BACK,
        "payment": MemberState.ROLLED_BACK,
        "inventory": MemberState.ROLLED_BACK,
        "notification": MemberState.SKIPPED,
    }
    records = logged(coord, txid)
    assert [type(r) for r in records] == [Opened, StepDone, StepDone, Decided, Ended]
    decided, ended = records[-2:]
    assert isinstance(decided, Decided) and decided.outcome is Outcome.ABORT
    assert decided.reason is not None and "inventory" in decided.reason
    assert isinstance(ended, Ended)
    # by position in Opened, in the order they were settled: the unstarted step first
    assert list(ended.acks) == [
        (3, MemberState.SKIPPED),
        (2, MemberState.ROLLED_BACK),
        (1, MemberState.ROLLED_BACK),
        (0, MemberState.ROLLED_BACK),
    ]


def test_first_step_failing_compensates_only_itself(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    txid = coord.begin_transaction()
    for name in SERVICES:
        coord.register_participant(txid, name, *saga_functions(name, journal, fail=name == "order"))
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)
    assert journal.of(txid) == [("order", "commit"), ("order", "rollback")]
    view = coord.transaction(txid)
    assert [p.state for p in view.ordered()] == [
        MemberState.ROLLED_BACK,
        *[MemberState.SKIPPED] * 3,
    ]


def test_compensation_that_raises_is_logged_and_the_rest_still_run(
    coord: TransactionCoordinator, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dtc_wal")
    txid = coord.begin_transaction()
    coord.register_participant(txid, "order", *saga_functions("order", journal))
    coord.register_participant(
        txid, "payment", *saga_functions("payment", journal, fail_compensation=True)
    )
    coord.register_participant(txid, "inventory", *saga_functions("inventory", journal, fail=True))
    with pytest.raises(TransactionAborted) as info:
        coord.commit_transaction(txid)

    assert info.value.pending == ("payment",)
    calls = journal.of(txid)
    assert calls[:3] == [("order", "commit"), ("payment", "commit"), ("inventory", "commit")]
    assert calls[3] == ("inventory", "rollback")
    # payment's compensation is retried (1 + max_retries) times, then order's still runs
    assert calls[4:] == [("payment", "rollback")] * 4 + [("order", "rollback")]

    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and "payment" in r.getMessage()
    ]
    assert errors, caplog.text
    assert all(txid in r.getMessage() for r in errors)
    assert "compensating payment failed" in caplog.text

    assert coord.state(txid) is TxState.DECIDED_ABORT
    (unfinished,) = coord.unfinished()
    assert unfinished.txid == txid
    assert [p.name for p in unfinished.pending()] == ["payment"]
    assert unfinished.participants["payment"].last_error is not None
    assert "compensating payment failed" in unfinished.participants["payment"].last_error


def test_rollback_before_commit_runs_no_compensation(
    coord: TransactionCoordinator, journal: Journal
) -> None:
    txid = coord.begin_transaction()
    for name in SERVICES:
        coord.register_participant(txid, name, *saga_functions(name, journal))
    coord.rollback_transaction(txid)
    assert journal.of(txid) == []
    assert coord.state(txid) is TxState.ABORTED
    view = coord.transaction(txid)
    assert {p.state for p in view.participants.values()} == {MemberState.SKIPPED}
    assert coord.unfinished() == []


# --- registry-built steps --------------------------------------------------------------


def test_registry_built_saga_steps(
    make_coord: Callable[..., TransactionCoordinator],
    registry: ParticipantRegistry,
    journal: Journal,
) -> None:
    built: list[tuple[str, dict[str, Any]]] = []

    def make_shipping(carrier: str, express: bool = False) -> RecordingStep:
        built.append(("shipping", {"carrier": carrier, "express": express}))
        return RecordingStep("shipping", journal)

    def send_mail(txid: str, data: Mapping[str, Any]) -> None:
        journal.add("email", "commit", txid)

    def unsend_mail(txid: str) -> None:
        journal.add("email", "rollback", txid)

    registry.register("shipping", make_shipping)
    registry.register_functions("email", send_mail, unsend_mail)
    coord = make_coord(registry=registry)

    txid = coord.begin_transaction()
    coord.register_participant(txid, "shipping", params={"carrier": "dhl", "express": True})
    coord.register_participant(txid, "email")
    coord.commit_transaction(txid, data={"parcel": 1})

    assert built == [("shipping", {"carrier": "dhl", "express": True})]
    assert journal.of(txid) == [("shipping", "action"), ("email", "commit")]
    view = coord.transaction(txid)
    assert view.state is TxState.COMMITTED
    shipping, email = view.ordered()
    assert (shipping.factory, shipping.params) == ("shipping", {"carrier": "dhl", "express": True})
    assert (email.factory, email.params) == ("email", {})
    assert shipping.recoverable and email.recoverable


def test_registry_built_saga_steps_compensate(
    make_coord: Callable[..., TransactionCoordinator],
    registry: ParticipantRegistry,
    journal: Journal,
) -> None:
    registry.register("reserve", lambda: RecordingStep("reserve", journal))
    registry.register(
        "charge",
        lambda: RecordingStep("charge", journal, action_failures=Failures(FOREVER)),
    )
    registry.register("ship", lambda: RecordingStep("ship", journal))
    coord = make_coord(registry=registry, max_retries=0)

    txid = coord.begin_transaction()
    for name in ("reserve", "charge", "ship"):
        coord.register_participant(txid, name)
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)
    assert journal.of(txid) == [
        ("reserve", "action"),
        ("charge", "action"),
        ("charge", "compensate"),
        ("reserve", "compensate"),
    ]
    assert coord.state(txid) is TxState.ABORTED


def test_hanging_saga_step_times_out(
    make_coord: Callable[..., TransactionCoordinator], journal: Journal
) -> None:
    coord = make_coord(prepare_timeout=0.3)
    release = threading.Event()
    outcome: list[BaseException | None] = []

    def hang(txid: str, data: Mapping[str, Any]) -> None:
        journal.add("hanging", "commit", txid)
        release.wait(10)

    txid = coord.begin_transaction()
    coord.register_participant(txid, "order", *saga_functions("order", journal))
    coord.register_participant(
        txid, "hanging", hang, lambda t: journal.add("hanging", "rollback", t)
    )

    def commit() -> None:
        try:
            coord.commit_transaction(txid)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=commit)
    thread.start()
    thread.join(2.0)
    release.set()
    thread.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], TransactionAborted)
    assert isinstance(outcome[0].cause, ParticipantTimeoutError)
    assert journal.what("order", txid) == ["commit", "rollback"]


def test_one_factory_serves_two_steps_under_their_own_names(log_dir: Path) -> None:
    done: list[str] = []

    class Step:
        def __init__(self, label: str) -> None:
            self.label = label

        def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
            done.append(self.label)

        def compensate(self, transaction_id: str) -> None:
            done.append(f"undo {self.label}")

    registry = ParticipantRegistry()
    registry.register("http-step", lambda label: Step(label))
    with TransactionCoordinator(log_dir, registry=registry) as coord:
        txid = coord.begin_transaction()
        coord.register_participant(txid, "reserve", factory="http-step", params={"label": "r"})
        coord.register_participant(txid, "charge", factory="http-step", params={"label": "c"})
        coord.commit_transaction(txid)
        view = coord.transaction(txid)
    assert done == ["r", "c"]
    assert [(p.name, p.factory) for p in view.ordered()] == [
        ("reserve", "http-step"),
        ("charge", "http-step"),
    ]
