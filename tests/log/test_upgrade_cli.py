"""``dtc upgrade`` and ``dtc verify`` on format 2 from the command line, and a real
``dtc upgrade --in-place`` killed with SIGKILL at each moment of the swap: the original
is intact at LOG, or both logs exist (never neither, never a changed original)."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures.format1.logs import DAMAGED, build, change_record, flip_last

from dtc_wal.cli import cli
from dtc_wal.maintenance.verify import log_format

from .test_upgrade import FIXTURE, LIVE

ROOT = Path(__file__).resolve().parents[2]


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def digest(log: Path) -> str:
    return hashlib.sha256((log / "data.mdb").read_bytes()).hexdigest()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    target = tmp_path / "shop-log"
    shutil.copytree(FIXTURE / "mixed", target)
    return target


def test_upgrade_to_a_new_directory_then_verify_it(log: Path, tmp_path: Path) -> None:
    result = run("upgrade", log, "--to", tmp_path / "log2")
    assert result.exit_code == 0, result.output
    assert "converted 10 of 10 transaction(s) (6 unfinished)" in result.output
    assert f"format-1 original (unchanged): {log}" in result.output
    verified = run("verify", tmp_path / "log2")
    assert verified.exit_code == 0, verified.output
    assert "10 transaction(s) (6 unfinished), format 2; no problems" in verified.output
    refused = run("verify", log)  # format 1: only `dtc upgrade` reads it
    assert refused.exit_code == 1 and f"dtc upgrade {log} --in-place" in refused.output


def test_json_and_dry_run(log: Path) -> None:
    result = run("upgrade", log, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dry_run"] and report["converted"] == 10 and report["not_converted"] == []
    assert log_format(log) == 1 and sorted(p.name for p in log.parent.iterdir()) == ["shop-log"]


def test_usage_errors(log: Path, tmp_path: Path) -> None:
    assert run("upgrade", log).exit_code == 2
    assert run("upgrade", log, "--in-place", "--to", tmp_path / "x").exit_code == 2


def test_damaged_transactions_exit_4_unless_skipped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    build(log, tmp_path / "journal")
    change_record(log, 2, flip_last)
    refused = run("upgrade", log, "--to", tmp_path / "log2")
    assert refused.exit_code == 4, refused.output
    assert DAMAGED in refused.output and "--skip-damaged" in refused.output
    dry = run("upgrade", log, "--dry-run")
    assert dry.exit_code == 4 and f"not converted, damaged: {DAMAGED}" in dry.output
    done = run("upgrade", log, "--to", tmp_path / "log2", "--skip-damaged")
    assert done.exit_code == 0, done.output
    assert f"{DAMAGED}: " in done.output and "kept in the original only" in done.output


def test_a_live_coordinator_exits_3(log: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", LIVE, str(log)], stdout=subprocess.PIPE)
    # LIVE holds the directory lock as a coordinator of the version that wrote it would
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        result = run("upgrade", log, "--in-place")
        assert result.exit_code == 3, result.output
        assert "live coordinator" in result.output
    finally:
        child.kill()
        child.wait()
    assert log_format(log) == 1


def killed_upgrade(log: Path, point: str) -> None:
    """Run ``dtc upgrade LOG --in-place`` in a child armed to SIGKILL itself at ``point``."""
    command = ["-m", "dtc_wal.testing.crash_at", point, "-m", "dtc_wal"]
    ran = subprocess.run(
        [sys.executable, *command, "upgrade", str(log), "--in-place"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == -signal.SIGKILL, (ran.returncode, ran.stdout, ran.stderr)


def test_killed_before_the_swap_the_original_is_untouched(log: Path) -> None:
    before = digest(log)
    killed_upgrade(log, "upgrade.before-swap")
    assert log_format(log) == 1 and digest(log) == before
    beside = [p for p in log.parent.iterdir() if p != log]
    assert [p.name.startswith("shop-log.upgrade-") for p in beside] == [True]
    assert log_format(beside[0]) == 2  # the complete working copy, not in place
    again = run("upgrade", log, "--in-place")  # a later run goes ahead
    assert again.exit_code == 0, again.output
    assert log_format(log) == 2


def test_killed_after_the_swap_both_logs_exist(log: Path) -> None:
    before = digest(log)
    killed_upgrade(log, "upgrade.after-swap")
    assert log_format(log) == 2
    beside = [p for p in log.parent.iterdir() if p != log]
    assert len(beside) == 1 and log_format(beside[0]) == 1
    assert digest(beside[0]) == before
    assert run("verify", log).exit_code == 0


def test_not_killed_the_original_ends_as_format1_evidence(log: Path) -> None:
    before = digest(log)
    result = run("upgrade", log, "--in-place")
    assert result.exit_code == 0, result.output
    (evidence,) = [p for p in log.parent.iterdir() if p != log]
    assert evidence.name.startswith("shop-log.format1-") and digest(evidence) == before


def test_the_upgraded_log_opens_and_the_original_is_refused(log: Path, tmp_path: Path) -> None:
    """The coordinator runs an upgraded log, with its unfinished transactions, and `dtc`
    commands read it; the format-1 original is refused with the upgrade hint."""
    from dtc_wal import TransactionCoordinator
    from dtc_wal.errors import UnsupportedFormatError

    upgraded = run("upgrade", log, "--to", tmp_path / "log2")
    assert upgraded.exit_code == 0 and upgraded.stderr == ""
    with TransactionCoordinator(tmp_path / "log2", recovery_interval=None, recover=False) as new:
        assert len(new.unfinished()) == 6
    status = run("status", tmp_path / "log2")
    assert status.exit_code == 0 and "unfinished         6" in status.output
    with pytest.raises(UnsupportedFormatError, match="dtc upgrade"):
        TransactionCoordinator(log, recovery_interval=None, recover=False)
