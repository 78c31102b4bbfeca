"""The benchmark command runs end to end with tiny sizes and reports every ratio.

A smoke test, not a speed test: it checks that each measurement ran and produced a
sensible number, never how fast anything was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import run

pytest.importorskip("transaction")  # zope transaction: the test extra installs it


@pytest.mark.format1
def test_benchmark_run_writes_every_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "bench.json"
    out = run.main(
        [
            "--seconds",
            "0.2",
            "--callers",
            "1,64",
            "--history",
            "300",
            "--unfinished",
            "30",
            "--json",
            str(out_path),
        ]
    )
    written = json.loads(out_path.read_text())
    assert written["ratios"] == pytest.approx(out["ratios"])
    for name in run.TARGETS:
        assert written["ratios"][name] > 0, name
    assert "group/naive @64, same records (info)" in written["ratios"]
    row64 = next(r for r in written["throughput"] if r["callers"] == 64)
    # 3 participants: begun, 3 enlisted, 3 prepared, decision, 3 acknowledged, completed
    assert row64["durable"]["records_per_tx"] == pytest.approx(12, abs=0.1)
    assert row64["durable"]["transactions"] > 0
    for key in ("redrive", "redrive_one_worker"):
        assert written[key]["unfinished"] == 30 and written[key]["tx_per_s"] > 0
    for key in ("redrive_slow", "redrive_slow_one_worker"):
        assert written[key]["unfinished"] == 10 and written[key]["delay_s"] == 0.002
    assert written["latency"]["sync_after_idle_s"] > 0
    printed = capsys.readouterr().out
    assert "p50/ideal" in printed and "written to" in printed
