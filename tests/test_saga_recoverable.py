"""Saga steps from callables are recoverable when the callables import back (issue 11,
item 2): import paths in the log, a warning -- or under ``strict=True`` an error -- for
what cannot be rebuilt, compensations that get their action's data, and the reasons
recovery gives for steps it cannot rebuild. The SIGKILL tests are in
tests/crash/test_saga_callables.py."""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import saga_steps
from helpers import Journal, RecordingParticipant, RecordingStep

from dtc_wal import (
    NotRecoverableWarning,
    ParticipantRegistry,
    TransactionAborted,
    TransactionCoordinator,
    TxState,
)
from dtc_wal.drivers import Engine
from dtc_wal.errors import (
    DtcError,
    InvalidParticipantError,
    NotRecoverableError,
    UnknownTransactionError,
)
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.participant import CALLABLES_FACTORY
from dtc_wal.protocol import MemberSpec, Mode, Opened, Record, StepDone
from dtc_wal.recovery.report import RecoveryReport

MakeCoord = Callable[..., TransactionCoordinator]
DATA = {"sku": "A1", "qty": 2}


@pytest.fixture
def journal_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "journal"
    monkeypatch.setenv(saga_steps.JOURNAL, str(path))
    return path


@pytest.fixture
def no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotRecoverableWarning)
        yield


def _calls(path: Path) -> list[tuple[str, dict[str, Any] | None]]:
    return [(name, data) for name, _, data in saga_steps.journal(str(path))]


def recover(path: Path, registry: ParticipantRegistry, *, dry_run: bool = False) -> RecoveryReport:
    """One recovery pass over the log at ``path``, as ``dtc recover [--dry-run]`` runs it on
    format 2: the engine over the log, opened read-only for a dry run."""
    with LmdbLog(path, readonly=dry_run) as log, Engine(log, registry) as engine:
        return engine.recover(dry_run=dry_run)


# -- module-level functions: logged by import path ------------------------------------------


def test_module_level_functions_are_logged_with_their_import_paths_and_the_data(
    coord: TransactionCoordinator, journal_file: Path, no_warnings: None
) -> None:
    txid = coord.begin_transaction()
    coord.register_participant(txid, "order", saga_steps.create_order, saga_steps.cancel_order)
    coord.register_participant(txid, "payment", saga_steps.charge, saga_steps.refund)
    coord.commit_transaction(txid, DATA)
    coord.flush()

    found = coord.log.read(txid)
    assert found is not None
    opened = found.records[0]
    assert isinstance(opened, Opened) and opened.data == DATA  # before any action ran
    order, payment = opened.members
    assert (order.name, payment.name) == ("order", "payment")
    assert (order.factory, order.params) == (
        CALLABLES_FACTORY,
        {"commit": "saga_steps:create_order", "rollback": "saga_steps:cancel_order"},
    )
    assert (payment.factory, payment.params) == (
        CALLABLES_FACTORY,
        {"commit": "saga_steps:charge", "rollback": "saga_steps:refund"},
    )
    assert all(p.recoverable for p in coord.transaction(txid).ordered())
    assert _calls(journal_file) == [("create_order", DATA), ("charge", DATA)]


class _Service:
    def cancel(self, txid: str) -> None: ...

    def __call__(self, txid: str) -> None: ...


def _closure() -> Callable[[str], None]:
    def cancel(txid: str) -> None: ...

    return cancel


def _rebound(txid: str) -> None: ...


_rebound_original = _rebound


def _rebound(txid: str) -> None:  # type: ignore[no-redef]
    ...


UNRECOVERABLE: dict[str, tuple[Callable[..., object], str]] = {
    "lambda": (lambda t: None, "is a lambda"),
    "closure": (_closure(), "is a function defined inside another function"),
    "bound method": (_Service().cancel, "is a bound method of a _Service object"),
    "callable object": (_Service(), "is a callable _Service object, not a function"),
    "partial": (functools.partial(saga_steps.refund), "is a callable partial object"),
    "rebound name": (_rebound_original, "which imports a different object"),
}


@pytest.mark.parametrize("kind", UNRECOVERABLE)
def test_unrecoverable_callables_warn_naming_the_step_why_and_what_to_do(
    coord: TransactionCoordinator, kind: str
) -> None:
    rollback, why = UNRECOVERABLE[kind]
    txid = coord.begin_transaction()
    with pytest.warns(NotRecoverableWarning) as caught:
        coord.register_participant(txid, "order", saga_steps.create_order, rollback)
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith("saga step 'order' cannot be rebuilt after a crash: its ")
    assert "rollback_function" in message and why in message
    for advice in ("module-level functions", "factory=", "register_functions", "dtc resolve"):
        assert advice in message
    assert warning.filename == __file__  # points at the register_participant call
    assert isinstance(warning.message, DtcError)
    # accepted, and the log says why it is not recoverable
    (member,) = coord.transaction(txid).ordered()
    assert member.factory is None and why in member.params["not-recoverable"]


def test_strict_refuses_unrecoverable_steps_and_enlists_nothing(
    make_coord: MakeCoord, journal_file: Path, no_warnings: None
) -> None:
    coord = make_coord(strict=True)
    txid = coord.begin_transaction()
    with pytest.raises(NotRecoverableError) as error:
        coord.register_participant(txid, "audit", lambda t, d: None, saga_steps.refund)
    assert isinstance(error.value, InvalidParticipantError) and isinstance(error.value, TypeError)
    assert "saga step 'audit'" in str(error.value) and "commit_function" in str(error.value)
    assert coord.transaction(txid).participants == {}
    # module-level functions and registry factories are what strict accepts
    coord.register_participant(txid, "order", saga_steps.create_order, saga_steps.cancel_order)
    coord.commit_transaction(txid, DATA)
    assert coord.state(txid) is TxState.COMMITTED
    assert _calls(journal_file) == [("create_order", DATA)]


def test_strict_refuses_2pc_objects_enlisted_directly(
    make_coord: MakeCoord, registry: ParticipantRegistry, journal: Journal
) -> None:
    registry.register("bank", lambda: RecordingParticipant("bank", journal))
    coord = make_coord(strict=True)
    txid = coord.begin_transaction()
    with pytest.raises(NotRecoverableError, match="participant 'shop' cannot be rebuilt"):
        coord.enlist_participant(txid, RecordingParticipant("shop", journal), name="shop")
    assert coord.enlist_participant(txid, "bank") == "bank"
    coord.commit_transaction(txid)
    assert journal.what("bank", txid) == ["prepare", "commit"]
    assert journal.what("shop", txid) == []


def test_by_default_2pc_objects_are_enlisted_without_a_warning(
    coord: TransactionCoordinator, journal: Journal, no_warnings: None
) -> None:
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("shop", journal), name="shop")
    coord.commit_transaction(txid)
    assert coord.state(txid) is TxState.COMMITTED


# -- compensations get the data --------------------------------------------------------------


class _DataStep(RecordingStep):
    """A registry saga step whose compensate takes the data."""

    def __init__(self, name: str, journal: Journal, seen: list[Any], fail: bool = False) -> None:
        super().__init__(name, journal)
        self.seen, self.fail = seen, fail

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        super().action(transaction_id, data)
        if self.fail:
            raise RuntimeError("declined")

    def compensate(self, transaction_id: str, data: Mapping[str, Any]) -> None:  # type: ignore[override]
        self.seen.append((self.name, dict(data)))
        super().compensate(transaction_id)


def test_compensations_that_take_data_get_the_data_their_action_got(
    make_coord: MakeCoord, registry: ParticipantRegistry, journal: Journal, journal_file: Path
) -> None:
    seen: list[Any] = []
    registry.register("reserve", lambda: _DataStep("reserve", journal, seen))
    registry.register("charge", lambda: _DataStep("charge", journal, seen, fail=True))
    registry.register_functions("label", saga_steps.ship, saga_steps.unship)
    coord = make_coord(max_retries=0)

    def keep(txid: str, data: Mapping[str, Any] | None = None) -> None:
        seen.append(("keep", data))

    txid = coord.begin_transaction()
    coord.register_participant(txid, "order", saga_steps.create_order, saga_steps.cancel_order)
    coord.register_participant(txid, "payment", saga_steps.charge, saga_steps.refund)
    coord.register_participant(txid, "label")  # register_functions: recoverable by name
    with pytest.warns(NotRecoverableWarning):
        coord.register_participant(txid, "keep", lambda t, d: None, keep)
    coord.register_participant(txid, "reserve")
    coord.register_participant(txid, "charge")
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid, DATA)

    assert seen == [("charge", DATA), ("reserve", DATA), ("keep", DATA)]
    assert _calls(journal_file) == [
        ("create_order", DATA),
        ("charge", DATA),
        ("ship", DATA),
        ("unship", DATA),
        ("refund", None),  # refund(txid): the original contract still holds
        ("cancel_order", DATA),
    ]


# -- what recovery says about steps it cannot rebuild ----------------------------------------


def _write_unfinished_saga(
    log: Path, steps: dict[str, tuple[str | None, Any]], done: int | None = None
) -> str:
    """A saga killed after the first ``done`` steps' actions were logged (by default every
    step but the last, which may have run: the engine logs the last step's completion only
    in the commit decision), written record by record."""
    txid, now = "tx-saga", time.time()
    members = tuple(MemberSpec(name, factory, params) for name, (factory, params) in steps.items())
    records: list[Record] = [Opened(txid, now, Mode.SAGA, members, DATA)]
    ran = len(steps) - 1 if done is None else done
    records += [StepDone(txid, now, index) for index in range(ran)]
    with LmdbLog(log) as written:
        written.append(records)
    return txid


def test_unimportable_paths_at_recovery_leave_the_step_in_doubt_with_the_reason(
    log_dir: Path, journal_file: Path
) -> None:
    txid = _write_unfinished_saga(
        log_dir,
        {
            "order": (
                CALLABLES_FACTORY,
                {"commit": "saga_steps:create_order", "rollback": "saga_steps:cancel_order"},
            ),
            "gone": (CALLABLES_FACTORY, {"commit": "no_such_shop:a", "rollback": "no_such_shop:b"}),
            "renamed": (
                CALLABLES_FACTORY,
                {"commit": "saga_steps:ship", "rollback": "saga_steps:unship_v1"},
            ),
            "legacy": (None, None),  # a step of callables logged by an older dtc-wal
        },
    )
    with TransactionCoordinator(log_dir, recovery_interval=None) as coord:
        report = coord.last_recovery_report
        why = {d.participant: d.error or "" for d in report.in_doubt}
        assert set(why) == {"gone", "renamed", "legacy"}
        assert (
            "cannot rebuild step 'gone' by importing no_such_shop:a, no_such_shop:b" in why["gone"]
        )
        assert "ModuleNotFoundError" in why["gone"] and "PYTHONPATH" in why["gone"]
        assert "AttributeError" in why["renamed"] and "unship_v1" in why["renamed"]
        assert "logged by an older dtc-wal" in why["legacy"]
        assert "compensate by hand" in why["legacy"] and "`dtc resolve`" in why["legacy"]
        assert coord.state(txid) is TxState.DECIDED_ABORT  # nothing dropped
    # the step that imports was compensated, with the data from the log
    assert _calls(journal_file) == [("cancel_order", DATA)]


def test_dry_run_reports_steps_whose_module_cannot_be_found(log_dir: Path) -> None:
    _write_unfinished_saga(
        log_dir,
        {
            "order": (
                CALLABLES_FACTORY,
                {"commit": "saga_steps:create_order", "rollback": "saga_steps:cancel_order"},
            ),
            "gone": (CALLABLES_FACTORY, {"commit": "no_such_shop:a", "rollback": "no_such_shop:b"}),
        },
    )
    report = recover(log_dir, ParticipantRegistry(), dry_run=True)
    (doubt,) = report.in_doubt
    assert doubt.participant == "gone"
    assert (
        doubt.error == "cannot import no_such_shop:a: module no_such_shop is not on the import path"
    )


def test_dry_run_blocks_only_on_steps_the_real_run_would_call(
    log_dir: Path, journal_file: Path
) -> None:
    """Killed after step 0 ran: recovery compensates step 0 and step 1 (it may have run) and
    skips step 2 without calling it, so step 2's unimportable path blocks neither run."""
    good = {"commit": "saga_steps:create_order", "rollback": "saga_steps:cancel_order"}
    _write_unfinished_saga(
        log_dir,
        {
            "order": (CALLABLES_FACTORY, good),
            "payment": (CALLABLES_FACTORY, good),
            "gone": (CALLABLES_FACTORY, {"commit": "no_such_shop:a", "rollback": "no_such_shop:b"}),
        },
        done=1,
    )
    assert recover(log_dir, ParticipantRegistry(), dry_run=True).in_doubt == []
    assert recover(log_dir, ParticipantRegistry()).in_doubt == []
    assert [name for name, _ in _calls(journal_file)] == ["cancel_order", "cancel_order"]


def test_warning_turned_error_refuses_the_step_whole(coord: TransactionCoordinator) -> None:
    """Under ``-W error`` the warning is raised before the step joins: nothing half-done."""
    txid = coord.begin_transaction()
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotRecoverableWarning)
        with pytest.raises(NotRecoverableWarning, match="saga step 'audit'"):
            coord.register_participant(txid, "audit", lambda t, d: None, lambda t: None)
    assert coord.transaction(txid).participants == {}


def test_strict_reports_an_unknown_transaction_as_such(make_coord: MakeCoord) -> None:
    coord = make_coord(strict=True)
    with pytest.raises(UnknownTransactionError):
        coord.register_participant("no-such-tx", "audit", lambda t, d: None, lambda t: None)
