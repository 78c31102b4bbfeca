"""``python -m benchmarks.log2`` runs end to end with tiny sizes (a smoke test: it checks
that every measurement produced a sensible number, never how fast anything was)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import log2


def test_log2_benchmark_reports_every_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "log2.json"
    sizes = ["--seconds", "0.1", "--callers", "1,4", "--transactions", "50", "--repeat", "1"]
    out = log2.main([*sizes, "--json", str(out_path)])
    assert json.loads(out_path.read_text()) == json.loads(json.dumps(out))
    assert list(out["cpu"]) == ["format 2"] and out["cpu"]["format 2"]["us_per_tx"] > 0
    assert [row["callers"] for row in out["durable"]] == [1, 4]
    for row in out["durable"]:
        assert row["format 2"]["transactions"] > 0
        assert row["format 2"]["syncs_per_tx"] > 0 and row["format 2"]["bytes_per_tx"] > 0
    assert 0 < out["payload"]["array_bytes"] < out["payload"]["map_bytes"]
    assert "Durable (synced) transactions per second" in capsys.readouterr().out
