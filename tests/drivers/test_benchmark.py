"""The engine benchmark runs (tiny sizes; it asserts nothing about speed)."""

from __future__ import annotations

from benchmarks import engine


def test_the_engine_benchmark_runs_and_reports_every_number() -> None:
    out = engine.main(["--seconds", "0.1", "--samples", "5", "--transactions", "20"])
    for key in ("engine_1", "engine_64", "zope_64", "coordinator_64", "cpu_us"):
        assert out[key] > 0
    assert out["p50_2pc"] > 0 and out["ideal_lists_prepared"] > 0
