"""``python -m benchmarks.engine`` runs with tiny sizes (it asserts nothing about speed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ("--seconds", "0.1", "--samples", "5", "--transactions", "20")


def test_the_engine_benchmark_runs_and_prints_every_number() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.engine", *TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for needle in ("64 callers: engine", "zope in memory", "CPU per transaction", "p50 2pc"):
        assert needle in out, out
    assert "p50 lists_prepared" in out
