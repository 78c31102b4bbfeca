"""The README's saga form -- ``register_participant(txid, name, commit_fn, rollback_fn)`` --
survives a SIGKILL of its coordinator when the functions are importable module-level
functions (tests/saga_steps.py): the log holds their import paths and the saga's data, and
a restart with an empty registry (in this process, or ``dtc recover`` in another) finishes
the saga as the log implies, giving data-taking compensations the data their action got.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import saga_steps

from dtc_wal import ParticipantRegistry, TransactionCoordinator, TxState

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
CHILD = (  # argv: CRASH_AT LOG [OPTION...]; the child arms its crash point itself
    "import sys, saga_steps; from dtc_wal.testing import arm_spec; arm_spec(sys.argv[1]); "
    "sys.exit(saga_steps.main(sys.argv[2:]))"
)


def _env(journal: Path, *, importable: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env[saga_steps.JOURNAL] = str(journal)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)] if importable else [str(ROOT)])
    return env


def _run_saga(tmp_path: Path, crash_at: str, *options: str) -> tuple[Path, Path, str]:
    """Run the child saga until the crash point SIGKILLs it; return log, journal, txid."""
    log, journal = tmp_path / "log", tmp_path / "journal"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, crash_at, str(log), *options],
        env=_env(journal),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return log, journal, proc.stdout.split()[0]


def _calls(journal: Path, txid: str) -> list[str]:
    return [name for name, t, _ in saga_steps.journal(str(journal)) if t == txid]


def _data_of(journal: Path, name: str) -> list[dict[str, Any] | None]:
    return [data for n, _, data in saga_steps.journal(str(journal)) if n == name]


@pytest.fixture
def journal_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Compensations run in this process write to the same journal as the child."""
    monkeypatch.setenv(saga_steps.JOURNAL, str(tmp_path / "journal"))


def _restart(log: Path) -> TransactionCoordinator:
    # an EMPTY registry: the steps come back by import alone
    return TransactionCoordinator(log, registry=ParticipantRegistry(), recovery_interval=None)


def test_undecided_saga_is_compensated_in_reverse_with_its_data(
    tmp_path: Path, journal_env: None
) -> None:
    """Killed after order and payment ran and were logged: presumed abort compensates
    shipping (it may have started), payment, order -- the data-taking ones with the data
    their action got, ``refund(txid)`` with the txid alone."""
    log, journal, txid = _run_saga(tmp_path, "saga.after-step-log:2")
    assert _calls(journal, txid) == ["create_order", "charge"]
    with _restart(log) as coord:
        assert coord.last_recovery_report.clean, coord.last_recovery_report.in_doubt
        assert coord.state(txid) is TxState.ABORTED
    assert _calls(journal, txid) == ["create_order", "charge", "unship", "refund", "cancel_order"]
    expected = {k: v for k, v in saga_steps.DATA.items()}
    assert _data_of(journal, "create_order") == [expected]
    assert _data_of(journal, "cancel_order") == [expected]
    assert _data_of(journal, "unship") == [expected]
    assert _data_of(journal, "refund") == [None]


def test_decided_saga_completes_without_compensating(tmp_path: Path, journal_env: None) -> None:
    log, journal, txid = _run_saga(tmp_path, "decision.after-commit-log")
    with _restart(log) as coord:
        assert coord.last_recovery_report.clean
        assert coord.state(txid) is TxState.COMMITTED
    assert _calls(journal, txid) == ["create_order", "charge", "ship"]


def test_compensation_killed_midway_resumes_with_the_data(
    tmp_path: Path, journal_env: None
) -> None:
    """Shipping fails, the live compensation of shipping runs, then the kill: recovery
    finishes the compensations from the log, data included."""
    log, journal, txid = _run_saga(tmp_path, "saga.after-compensation:1", "--fail", "shipping")
    assert _calls(journal, txid) == ["create_order", "charge", "ship", "unship"]
    with _restart(log) as coord:
        assert coord.last_recovery_report.clean
        assert coord.state(txid) is TxState.ABORTED
    calls = _calls(journal, txid)
    assert calls[-2:] == ["refund", "cancel_order"]
    assert set(calls[4:-2]) <= {"unship"}  # its acknowledgement may not have been on disk
    expected = {**saga_steps.DATA, "fail": "shipping"}
    assert _data_of(journal, "cancel_order") == [expected]
    assert {str(d) for d in _data_of(journal, "unship")} == {str(expected)}


def test_lambda_step_is_in_doubt_with_the_reason_after_a_crash(
    tmp_path: Path, journal_env: None
) -> None:
    log, journal, txid = _run_saga(tmp_path, "saga.after-step-log:3", "--lambda")
    assert _calls(journal, txid) == ["create_order", "charge", "audit"]
    with _restart(log) as coord:
        (doubt,) = coord.last_recovery_report.in_doubt
        assert (doubt.txid, doubt.participant, doubt.outcome) == (txid, "audit", "rollback")
        assert doubt.error is not None
        assert "step 'audit' was registered with callables recovery cannot import" in doubt.error
        assert "(its commit_function main.<locals>.<lambda> is a lambda)" in doubt.error
        assert "compensate by hand" in doubt.error and "`dtc resolve`" in doubt.error
        assert "register module-level functions or a factory" in doubt.error
        assert coord.state(txid) is TxState.DECIDED_ABORT  # never dropped
    # every step recovery could rebuild was compensated, in reverse, around the lambda
    assert _calls(journal, txid)[3:] == ["unship", "refund", "cancel_order"]


def _dtc_recover(log: Path, journal: Path, *, importable: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # no --registry: steps logged with import paths need none
        [sys.executable, "-m", "dtc_wal", "recover", str(log)],
        env=_env(journal, importable=importable),
        cwd=log.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dtc_recover_in_another_process_imports_the_steps(tmp_path: Path) -> None:
    """`dtc recover` with no registry at all: where the module cannot be imported the
    steps are in doubt with the reason (exit 4) and nothing is dropped; with it on
    PYTHONPATH the same command compensates them."""
    log, journal, txid = _run_saga(tmp_path, "saga.after-step-log:2")

    missing = _dtc_recover(log, journal, importable=False)
    assert missing.returncode == 4, missing.stdout + missing.stderr
    assert "cannot rebuild step 'order' by importing saga_steps:create_order" in missing.stdout
    assert "ModuleNotFoundError" in missing.stdout and "PYTHONPATH" in missing.stdout
    assert _calls(journal, txid) == ["create_order", "charge"]

    done = _dtc_recover(log, journal, importable=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _calls(journal, txid)[2:] == ["unship", "refund", "cancel_order"]
    assert _data_of(journal, "cancel_order") == [saga_steps.DATA]


def test_main_module_functions_get_their_module_path_under_python_m(tmp_path: Path) -> None:
    """Run as `python -m saga_steps`, its functions live in __main__ but import as
    saga_steps:...; a plain script's functions cannot be imported by another process."""
    ran = subprocess.run(
        [sys.executable, "-m", "saga_steps", "paths"],
        env=_env(tmp_path / "journal"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == '["saga_steps:create_order", "saga_steps:refund"]'

    script = tmp_path / "shop.py"
    script.write_text(
        "from dtc_wal.import_paths import import_path\n"
        "def cancel(txid): pass\n"
        "print(import_path(cancel))\n"
    )
    ran = subprocess.run(
        [sys.executable, str(script)],
        env=_env(tmp_path / "journal"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "of the script being run (__main__)" in ran.stdout
    assert "`dtc recover` cannot import" in ran.stdout
