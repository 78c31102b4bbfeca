"""Sagas on the engine, and recovery passes seeded from the log."""

from __future__ import annotations

import pytest
from helpers import Failures, Journal, RecordingParticipant, RecordingStep

from dtc_wal.drivers import Engine, EngineOptions
from dtc_wal.errors import TransactionAborted
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.participant import CallableStep
from dtc_wal.protocol.records import Decided, MemberSpec, Mode, Opened, Outcome, Vote
from dtc_wal.registry import ParticipantRegistry

from . import saga_functions
from .conftest import FAST_RETRIES


def test_a_saga_commits_each_step_once_in_order(engine: Engine, log: LmdbLog) -> None:
    journal = Journal()
    txid = engine.begin()
    steps = [RecordingStep(n, journal) for n in ("order", "pay", "ship")]
    for step in steps:
        engine.enlist(txid, step, mode=Mode.SAGA)
    before = log.syncs
    engine.commit(txid, {"sku": "A1"})
    # Opened, StepDone 0, StepDone 1, Decided + Ended: four forced writes
    assert log.syncs - before == 4
    assert journal.of(txid) == [("order", "action"), ("pay", "action"), ("ship", "action")]
    assert steps[0].data == [{"sku": "A1"}]
    log.flush()
    stored = log.read(txid)
    assert stored is not None and stored.finished


def test_a_failing_step_compensates_in_reverse(engine: Engine) -> None:
    journal = Journal()
    txid = engine.begin()
    engine.enlist(txid, RecordingStep("order", journal), mode=Mode.SAGA)
    engine.enlist(txid, RecordingStep("pay", journal), mode=Mode.SAGA)
    failing = RecordingStep("ship", journal, action_failures=Failures(-1))
    engine.enlist(txid, failing, mode=Mode.SAGA)
    engine.enlist(txid, RecordingStep("never", journal), mode=Mode.SAGA)
    with pytest.raises(TransactionAborted) as caught:
        engine.commit(txid)
    assert isinstance(caught.value.cause, RuntimeError)
    assert journal.of(txid) == [
        ("order", "action"),
        ("pay", "action"),
        ("ship", "action"),
        ("ship", "compensate"),  # it may have done part of its work
        ("pay", "compensate"),
        ("order", "compensate"),
    ]


def test_callable_steps_are_logged_by_import_path_and_rebuilt(log: LmdbLog) -> None:
    step = CallableStep(saga_functions.action, saga_functions.compensate)
    opened = Opened("saga-1", 1.0, Mode.SAGA, (MemberSpec("fn", *step.log_entry()),), {"k": 1})
    log.append([opened])  # the process died during the step: no StepDone, no decision
    with Engine(log, ParticipantRegistry()) as engine:
        report = engine.recover()
    assert report.finished == ["saga-1"]
    assert saga_functions.CALLS == [("compensate", "saga-1", {"k": 1})]


def test_undecided_transactions_are_rolled_back_and_lost_members_stay_in_doubt(
    log: LmdbLog,
) -> None:
    journal = Journal()
    registry = ParticipantRegistry()
    registry.register("rec", lambda name: RecordingParticipant(name, journal))
    members = (MemberSpec("a", "rec", {"name": "a"}), MemberSpec("obj", None, None))
    log.append([Opened("undecided", 1.0, Mode.TWO_PHASE, members[:1], None)])
    log.append([Opened("decided", 1.0, Mode.TWO_PHASE, members, None)])
    log.append([Decided("decided", 2.0, Outcome.COMMIT, ((0, Vote.YES), (1, Vote.YES)))])
    options = EngineOptions(policy=FAST_RETRIES)
    with Engine(log, registry, options) as engine:
        report = engine.recover()
    assert report.finished == ["undecided"]  # presumed abort
    assert journal.of("undecided") == [("a", "rollback")]
    assert journal.of("decided") == [("a", "commit")]
    (doubt,) = report.in_doubt
    assert (doubt.txid, doubt.participant, doubt.outcome) == ("decided", "obj", "commit")
    assert (doubt.error or "").startswith("obj was enlisted as an object")
    log.flush()
    stored = log.read("decided")
    assert stored is not None and not stored.finished  # obj is still pending
