"""The CLI beside a live coordinator that holds the log and keeps writing to it.

The coordinator runs in its own process (``tests/cli_registry.py hold``): LMDB, and py-lmdb
with it, refuse to open one environment twice in a process, and a live coordinator is in
another process in real life anyway. While it commits transactions in a loop, the read-only
commands must work on a consistent snapshot, and the commands that write must refuse.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dtc_wal.cli import cli

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail(f"no answer from the coordinator process in {timeout}s")
    line = proc.stdout.readline()
    if not line:
        assert proc.stderr is not None
        pytest.fail(f"coordinator process died: {proc.wait()} {proc.stderr.read()}")
    return line


class Live:
    def __init__(self, log: Path, journal: Path, proc: subprocess.Popen[str], ids: Any) -> None:
        self.log, self.journal, self.proc, self.ids = log, journal, proc, ids


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base = tmp_path_factory.mktemp("live")
    log, journal = base / "log", base / "journal"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "cli_registry.py"), "hold", str(log), str(journal)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        ids = json.loads(read_line(proc))
        yield Live(log, journal, proc, ids)
        assert proc.stdin is not None
        proc.stdin.close()  # let it finish: open the gate, stop the churn, close
        done = json.loads(read_line(proc))
        assert proc.wait(timeout=30) == 0
        assert done["churn"] > 0  # it really was writing while the tests read
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_status_names_the_live_coordinator(live: Live) -> None:
    result = run("status", live.log)
    assert result.exit_code == 0, result.output
    assert f"live coordinator   pid {live.proc.pid} on " in result.stdout
    status = json.loads(run("status", live.log, "--json").stdout)
    assert status["live_coordinator"].startswith(f"pid {live.proc.pid} ")
    assert status["unfinished"] >= 2  # the in-doubt one and the one blocked in prepare
    assert status["by_state"]["aborted"] == 1


def test_list_sees_the_unfinished_transactions(live: Live) -> None:
    result = run("list", live.log, "--state", "unfinished", "--json")
    assert result.exit_code == 0
    states = {t["txid"]: t["state"] for t in json.loads(result.stdout)}
    assert states[live.ids["in_doubt"]] == "decided-commit"
    assert states[live.ids["active"]] == "active"


def test_show_a_transaction_the_coordinator_is_still_driving(live: Live) -> None:
    out = run("show", live.log, live.ids["active"]).stdout
    assert "state              active" in out  # header keys align to "awaiting recovery"
    assert "next               a live coordinator holds the log" in out
    in_doubt = run("show", live.log, live.ids["in_doubt"])
    assert in_doubt.exit_code == 0
    assert "ConnectionError: warehouse is unreachable" in in_doubt.stdout


def test_verify_is_clean_while_the_coordinator_writes(live: Live) -> None:
    for _ in range(5):
        result = run("verify", live.log)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("ok: checked")


@pytest.mark.format1  # to port to format 2 (issue 12)
def test_export_reads_one_consistent_snapshot(live: Live) -> None:
    result = run("export", live.log)
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    lsns = [r["lsn"] for r in records]
    assert lsns == list(range(1, len(lsns) + 1))
    assert {live.ids["active"], live.ids["in_doubt"], *live.ids["committed"]} <= {
        r["txid"] for r in records
    }


def test_dry_runs_work_beside_it(live: Live) -> None:
    recover = run("recover", live.log, "--registry", "cli_registry:registry", "--dry-run")
    assert recover.exit_code == 0
    assert "would finish" in recover.stdout
    compact = run("compact", live.log, "--dry-run")
    assert compact.exit_code == 0 and compact.stdout.startswith("would remove 0 finished")


@pytest.mark.parametrize(
    "command",
    [
        ["recover", "--registry", "cli_registry:registry"],
        ["resolve", "TXID", "--commit", "--reason", "operator"],
        ["compact", "--keep", "0s"],
    ],
)
def test_commands_that_write_refuse(live: Live, command: list[str]) -> None:
    args = [a if a != "TXID" else live.ids["in_doubt"] for a in command]
    result = run(args[0], live.log, *args[1:])
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: log {live.log} is held by another live coordinator")
    assert f"pid {live.proc.pid}" in result.stderr
    assert len(result.stderr.splitlines()) == 1
