"""Every ``dtc`` command on a format-2 log written by ``Engine`` over ``LmdbLog``
(tests/cli2_bank.py): commits, an abort, a saga, a participant that keeps failing, and a
record damaged on disk; and the read-only commands beside a live writer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli2_bank import build
from click.testing import CliRunner, Result

from dtc_wal.cli import cli
from dtc_wal.log.lmdb import LmdbLog

TESTS = Path(__file__).parent


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def bank(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    log = tmp_path / "log"
    return log, build(log, tmp_path / "journal")


def test_status_counts_states_and_lists_in_doubt(bank: tuple[Path, dict[str, str]]) -> None:
    log, t = bank
    out = json.loads(run("status", log, "--json").output)
    assert out["format"] == 2 and out["last_lsn"] is None
    assert out["by_state"] == {"decided-commit": 1, "committed": 3, "aborted": 1, "damaged": 1}
    assert out["transactions"] == 6 and out["unfinished"] == 2
    assert out["oldest_unfinished"]["txid"] == t["doubt"]
    doubts = {(d["txid"], d["participant"]) for d in out["in_doubt"]}
    assert doubts == {(t["doubt"], "b"), (t["damaged"], "*")}
    text = run("status", log)
    assert text.exit_code == 0
    assert "1 participant(s) in 1 transaction(s), 1 damaged" in text.output


def test_list_filters_by_state(bank: tuple[Path, dict[str, str]]) -> None:
    log, t = bank
    rows = json.loads(run("list", log, "--json").output)
    assert [r["txid"] for r in rows] == [
        t[k] for k in ("commit1", "commit2", "abort", "saga", "doubt", "damaged")
    ]
    by = {r["txid"]: r for r in rows}
    assert by[t["saga"]]["mode"] == "saga"
    assert by[t["abort"]]["participants"] == {"a": "rolled-back", "b": "rolled-back"}
    assert by[t["doubt"]]["recovery"] == "in doubt"
    unfinished = json.loads(run("list", log, "--state", "unfinished", "--json").output)
    assert {r["txid"] for r in unfinished} == {t["doubt"], t["damaged"]}
    aborted = run("list", log, "--state", "aborted")
    assert t["abort"] in aborted.output and t["commit1"] not in aborted.output


def test_show_gives_the_format2_timeline(bank: tuple[Path, dict[str, str]]) -> None:
    log, t = bank
    out = json.loads(run("show", log, t["doubt"][:8], "--json").output)
    assert out["txid"] == t["doubt"] and out["state"] == "decided-commit"
    types = [r["type"] for r in out["records"]]
    assert types[:2] == ["opened", "decided"] and "failed" in types
    assert out["records"][1]["votes"] == {"a": "yes", "b": "yes"}
    assert [r["seq"] for r in out["records"]] == list(range(len(types)))
    assert [d["participant"] for d in out["in_doubt"]] == ["b"]
    saga = json.loads(run("show", log, t["saga"], "--json").output)
    assert [r["type"] for r in saga["records"]] == ["opened", "step-done", "decided", "ended"]
    text = run("show", log, t["saga"])
    assert text.exit_code == 0 and "step-done  reserve" in text.output


def test_show_of_a_damaged_transaction_exits_4(bank: tuple[Path, dict[str, str]]) -> None:
    log, t = bank
    result = run("show", log, t["damaged"], "--json")
    assert result.exit_code == 4
    out = json.loads(result.output[: result.output.rindex("}") + 1])
    assert out["state"] == "damaged" and "checksum" in out["problems"][0]


def test_recover_leaves_the_failing_participant_in_doubt_then_resolve_settles_it(
    bank: tuple[Path, dict[str, str]],
) -> None:
    log, t = bank
    reg = "cli_registry:registry"
    dry = run("recover", log, "--registry", reg, "--dry-run", "--json")
    assert dry.exit_code == 4  # the damaged transaction would be left alone
    real = run("recover", log, "--registry", reg, "--json")
    assert real.exit_code == 4
    report = json.loads(real.output[: real.output.rindex("}") + 1])
    assert {a["txid"] for a in report["transactions"]} == {t["doubt"], t["damaged"]}
    with LmdbLog(log, readonly=True) as opened:
        stored = opened.read(t["doubt"])
        assert stored is not None and not stored.finished
    resolved = run(
        "resolve",
        log,
        t["doubt"],
        "--commit",
        "--participant",
        "b",
        "--reason",
        "done by hand",
        "--json",
    )
    assert resolved.exit_code == 0, resolved.output
    assert json.loads(resolved.output)["pending"] == []
    shown = json.loads(run("show", log, t["doubt"], "--json").output)
    assert "resolved" in [r["type"] for r in shown["records"]]
    assert shown["participants"][1]["resolution"] == "commit"


def test_export_writes_every_record_and_marks_the_damage(
    bank: tuple[Path, dict[str, str]],
) -> None:
    log, t = bank
    result = run("export", log)
    assert result.exit_code == 4
    lines = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
    damaged = [x for x in lines if "damaged" in x]
    assert [(d["txid"], d["seq"]) for d in damaged] == [(t["damaged"], 1)]
    with LmdbLog(log, readonly=True) as opened:
        readable = sum(len(s.records) for s in opened.transactions())
    # records after the damaged one are not read back through the interface
    assert len(lines) == readable + 1


def test_compact_removes_finished_transactions_only(bank: tuple[Path, dict[str, str]]) -> None:
    log, t = bank
    dry = json.loads(run("compact", log, "--keep", "0s", "--dry-run", "--json").output)
    assert dry["transactions_removed"] == 4 and dry["unfinished_kept"] == 2
    done = json.loads(run("compact", log, "--keep", "0s", "--json").output)
    assert done["transactions_removed"] == 4 and done["records_removed"] == dry["records_removed"]
    left = json.loads(run("list", log, "--json").output)
    assert {r["txid"] for r in left} == {t["doubt"], t["damaged"]}


def test_backup_is_a_log_that_opens_and_verifies_alike(
    bank: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    log, t = bank
    result = run("backup", log, "--to", tmp_path / "copy", "--json")
    assert result.exit_code == 0, result.output
    copy = Path(json.loads(result.output)["backup"])
    with LmdbLog(copy, readonly=True) as opened:
        assert sorted(s.txid for s in opened.transactions()) == sorted(t.values())
    assert run("verify", copy).exit_code == run("verify", log).exit_code == 4


def test_repair_drops_the_damaged_transaction_keeping_a_copy(
    bank: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    log, t = bank
    refused = run("repair", log, t["doubt"])
    assert refused.exit_code == 1 and "not damaged" in refused.output
    result = run("repair", log, t["damaged"], "--backup-to", tmp_path / "evidence", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["records_removed"] == 4 and out["damaged"][0]["seq"] == 1
    assert [r["type"] for r in out["records"]] == ["opened"]
    with LmdbLog(tmp_path / "evidence", readonly=True) as kept:
        assert kept.read(t["damaged"]) is not None
    with LmdbLog(log, readonly=True) as opened:
        assert opened.read(t["damaged"]) is None
        assert [s.txid for s in opened.unfinished()] == [t["doubt"]]
    assert run("verify", log).exit_code == 0


def test_beside_a_live_writer_reads_work_and_writes_refuse(
    bank: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    log, _ = bank
    child = subprocess.Popen(
        [sys.executable, str(TESTS / "cli2_bank.py"), "hold", str(log), str(tmp_path / "j")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(TESTS), "PATH": ""},
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("ready "), line
        live = line.split()[1]
        status = json.loads(run("status", log, "--json").output)
        assert status["live_coordinator"] and status["transactions"] == 7
        shown = json.loads(run("show", log, live, "--json").output)
        assert shown["state"] in ("decided-commit", "committed")  # Ended is a lazy append
        assert live in run("list", log, "--state", "decided-commit", "--state", "committed").output
        assert run("compact", log, "--keep", "0s").exit_code == 3
        assert run("recover", log).exit_code == 3
        assert run("backup", log, "--to", tmp_path / "b").exit_code == 3
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
