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
            "--samples",
            "5",
            "--transactions",
            "20",
            "--per-path",
            "4",
            "--json",
            str(out_path),
        ]
    )
    written = json.loads(out_path.read_text())
    assert written["ratios"] == pytest.approx(out["ratios"])
    for name in run.TARGETS:
        assert written["ratios"][name] > 0, name
    assert written["log_format"] == 2
    assert "p50/ideal, back-to-back sync (info)" in written["ratios"]
    row64 = next(r for r in written["throughput"] if r["callers"] == 64)
    # format 2, 3 participants: Opened (with the members), Decided, Ended
    assert row64["durable"]["records_per_tx"] == pytest.approx(3, abs=0.01)
    assert row64["durable"]["transactions"] > 0
    paths = written["paths"]
    assert set(paths) == {"2pc", "saga", "one-phase", "abort", "rollback"}
    for name, cost in paths.items():
        assert cost["records_per_tx"] >= 2 and cost["record_bytes_per_tx"] > 0, name
    # synced writes per path (docs/protocol.md): 2PC forces Opened and Decided; a saga of
    # 3 steps forces Opened and a StepDone before each next step and the decision; an
    # abort forces Opened only; one-phase and a rollback before commit force nothing
    # (their records ride the lazy flush, a sync of its own when nothing else is writing).
    assert paths["2pc"]["syncs_per_tx"] >= 2
    assert paths["saga"]["syncs_per_tx"] > paths["2pc"]["syncs_per_tx"]
    assert paths["one-phase"]["syncs_per_tx"] < 1 and paths["rollback"]["syncs_per_tx"] < 1
    assert written["cpu"]["us_per_tx"] > 0
    for key in ("redrive", "redrive_one_worker"):
        assert written[key]["unfinished"] == 30 and written[key]["tx_per_s"] > 0
    for key in ("redrive_slow", "redrive_slow_one_worker"):
        assert written[key]["unfinished"] == 10 and written[key]["delay_s"] == 0.002
    assert written["latency"]["sync_after_idle_s"] > 0
    lat = written["latency"]
    # plain 2PC: two round trips + two forced writes; lists_prepared: one forced write
    assert lat["ideal_s"] == pytest.approx(2 * lat["round_trip_s"] + 2 * lat["sync_after_idle_s"])
    assert written["latency_listing"]["ideal_s"] < lat["ideal_s"]
    # the durable appends were timed inside the run: plain 2PC makes two per transaction
    assert lat["forced_p50_s"] > 0 and written["latency_listing"]["forced_p50_s"] > 0
    assert "p50/ideal, in-run appends (info)" in written["ratios"]
    printed = capsys.readouterr().out
    assert "p50/ideal" in printed and "written to" in printed
