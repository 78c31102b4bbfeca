"""The concurrency stress test, in-process and once under ``python -X dev``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .stress import run_stress

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent

#: What ``-X dev`` prints for resources and threads the code forgot.
LEAK_MARKERS = (
    "ResourceWarning",
    "unclosed",
    "Exception ignored",
    "Exception in thread",
    "still running",
    "Traceback",
)


@pytest.mark.slow
def test_stress_32_threads_x_500_transactions(tmp_path: Path) -> None:
    """32 callers, 500 mixed transactions each (some vote no, fail transiently, need saga
    compensations or recovery), one coordinator; then the machine's invariants."""
    ends = run_stress(tmp_path / "log", threads=32, per_thread=500)
    assert ends["ok"] + ends["incomplete"] + ends["aborted"] + ends["rollback"] == 32 * 500
    # The workload is mixed: every way to end happened, many times.
    for end in ("ok", "incomplete", "aborted", "rollback", "saga-compensated"):
        assert ends[end] > 100, ends


def test_stress_under_dev_mode_leaves_no_unclosed_resources(tmp_path: Path) -> None:
    """A smaller stress run in a child ``python -X dev -W error::ResourceWarning``: it must
    pass and print nothing about unclosed files, sockets, LMDB environments or threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-W",
            "error::ResourceWarning",
            "-m",
            "stateful.stress",
            "--threads",
            "8",
            "--per-thread",
            "40",
            str(tmp_path / "log"),
        ],
        cwd=TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "invariants hold" in proc.stdout
    leaks = [line for line in proc.stderr.splitlines() if any(m in line for m in LEAK_MARKERS)]
    assert not leaks, proc.stderr
