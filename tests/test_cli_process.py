"""The installed ``dtc`` as a real process, against a log left by a SIGKILLed coordinator.

The coordinator (``tests/cli_registry.py crash``) runs under
``python -m dtc_wal.testing.crash_at decision.after-commit-log``: it kills itself with
SIGKILL once the commit decision is durable and before any participant hears commit.
Then ``dtc`` (or ``python -m dtc_wal`` when no ``dtc`` is installed next to this Python)
must show the stuck transaction, verify the log, and recover it with the test registry.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_registry import crash_command, journal_lines

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def dtc_command() -> list[str]:
    beside = Path(sys.executable).parent / "dtc"  # the console script of this environment
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dtc")
    if found:
        return [found]
    return [sys.executable, "-m", "dtc_wal"]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}  # dtc_wal, when it is not installed


def dtc(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*dtc_command(), *(str(a) for a in args)],
        cwd=ROOT,  # so that --registry tests.cli_registry:registry imports
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def crashed(tmp_path: Path) -> tuple[Path, Path, str]:
    """A log whose coordinator was killed right after logging its commit decision."""
    log, journal = tmp_path / "log", tmp_path / "journal"
    proc = subprocess.run(
        crash_command(log, journal),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    txid = proc.stdout.strip()
    assert journal_lines(journal, "payment") == [f"prepare {txid}"]
    assert journal_lines(journal, "stock") == [f"prepare {txid}"]
    return log, journal, txid


def test_dtc_inspects_verifies_and_recovers_a_crashed_log(
    crashed: tuple[Path, Path, str],
) -> None:
    log, journal, txid = crashed

    status = dtc("status", log)
    assert status.returncode == 0, status.stderr
    assert "live coordinator   none (no coordinator holds the log)" in status.stdout
    assert "transactions       1: 1 decided-commit" in status.stdout
    assert f"unfinished         1 (oldest: {txid}, decided-commit" in status.stdout
    # nobody tried them since the crash: awaiting recovery, not in doubt
    assert "in doubt           0 participant(s) in 0 transaction(s)\n" in status.stdout
    assert "awaiting recovery  2 participant(s) in 1 transaction(s)" in status.stdout
    assert f"  {txid} payment: needs commit, not tried yet\n" in status.stdout

    show = dtc("show", log, txid[:8])
    assert show.returncode == 0, show.stderr
    assert f"transaction        {txid}\nstate              decided-commit" in show.stdout
    timeline = show.stdout.split("\ntimeline\n")[1].splitlines()[1:]
    assert [line.split()[3] for line in timeline] == [
        "opened",
        "decided",
    ]
    assert '"blob": {"$base64": "AP9yYXc="}' in timeline[0]  # the data opens it in format 2

    verify = dtc("verify", log)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("ok: checked 2 record(s), 1 transaction(s) (1 unfinished)")

    dry = dtc("recover", log, "--registry", "tests.cli_registry:registry", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{txid}  decided-commit: re-send commit: payment, stock -> would finish" in dry.stdout
    assert journal_lines(journal, "payment") == [f"prepare {txid}"]  # nobody was called

    recover = dtc("recover", log, "--registry", "tests.cli_registry:registry")
    assert recover.returncode == 0, recover.stderr
    assert f"{txid}  decided-commit: re-send commit -> finished" in recover.stdout
    assert journal_lines(journal, "payment") == [f"prepare {txid}", f"commit {txid}"]
    assert journal_lines(journal, "stock") == [f"prepare {txid}", f"commit {txid}"]

    after = dtc("show", log, txid)
    assert "state        committed" in after.stdout
    assert after.stdout.rstrip().splitlines()[-1].split()[3] == "ended"
    assert dtc("verify", log).returncode == 0
    assert "unfinished         0" in dtc("status", log).stdout


def test_dtc_errors_are_one_line_unless_debug(crashed: tuple[Path, Path, str]) -> None:
    log, _, _ = crashed
    unknown = dtc("show", log, "no-such-txid")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("Error: unknown transaction 'no-such-txid'")
    assert unknown.stderr.count("\n") == 1

    missing = dtc("status", log.parent / "elsewhere")
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: no log at") and "Traceback" not in missing.stderr

    debug = dtc("--debug", "status", log.parent / "elsewhere")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "dtc_wal.errors.LogError: no log at" in debug.stderr


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dtc_wal", "--help"],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: dtc [OPTIONS] COMMAND [ARGS]...")
    assert "recover" in result.stdout and "Exit codes:" in result.stdout
