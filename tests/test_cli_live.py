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
from dtc_wal.cli.commands.reading import open_readonly
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.maintenance.verify import verify_log

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
    # Each run reads the whole log while transactions open and end: one read that mixed two
    # states would report a churn transaction as damage (see the stepped tests below).
    for _ in range(20):
        result = run("verify", live.log)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("ok: checked")


def test_export_reads_one_consistent_snapshot(live: Live) -> None:
    result = run("export", live.log)
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    txids = [r["txid"] for r in records]
    # format 2: transactions in txid order, each whole from its Opened (seq 0) on
    assert list(dict.fromkeys(txids)) == sorted(set(txids))
    for txid in set(txids):
        mine = [r for r in records if r["txid"] == txid]
        assert [r["seq"] for r in mine] == list(range(len(mine)))
        assert mine[0]["type"] == "opened"
    assert {live.ids["active"], live.ids["in_doubt"], *live.ids["committed"]} <= set(txids)


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


# -- one snapshot per command: a writer the test steps by hand (tests/cli2_bank.py write) ------


class Writer:
    """A process holding the log open for writing; :meth:`do` appends and waits for it."""

    def __init__(self, log: Path, proc: subprocess.Popen[str]) -> None:
        self.log, self.proc = log, proc

    def do(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert read_line(self.proc) == "ok\n"  # durable before the test reads on


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    log = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "cli2_bank.py"), "write", str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert read_line(proc) == "ready\n"
        yield Writer(log, proc)
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_verify_does_not_see_a_transaction_opened_after_it_began(writer: Writer) -> None:
    for txid in ("m-1", "m-2"):
        writer.do(f"open {txid}")
        writer.do(f"end {txid}")

    def meanwhile(done: int, total: int) -> None:
        if done == 1:  # the txns table is read; "a-new" sorts before every txid read
            writer.do("open a-new")

    report = verify_log(writer.log, progress=meanwhile)
    assert report.ok, report.problems  # not "the unfinished index lists it, but nothing else"
    assert (report.transactions, report.unfinished) == (2, 0)
    assert verify_log(writer.log).unfinished == 1  # a new read sees it


def test_verify_does_not_see_a_transaction_end_after_it_began(writer: Writer) -> None:
    writer.do("open m-1")
    writer.do("end m-1")
    writer.do("open z-late")

    def meanwhile(done: int, total: int) -> None:
        if done == total:  # z-late, the last txid, was read unfinished
            writer.do("end z-late")

    report = verify_log(writer.log, progress=meanwhile)
    assert report.ok, report.problems  # not "has not ended but is missing from the index"
    assert (report.transactions, report.unfinished) == (2, 1)
    assert verify_log(writer.log).unfinished == 0


def test_a_reading_command_reads_one_snapshot(writer: Writer) -> None:
    """What ``dtc status``, ``list``, ``show``, ``export`` and the dry runs read through:
    every table as of the moment the command opened the log."""
    writer.do("open m-1")
    writer.do("end m-1")
    writer.do("open m-2")
    with open_readonly(writer.log) as opened:
        writer.do("end m-2")
        writer.do("open a-new")
        assert opened.read("a-new") is None
        assert [t.txid for t in opened.transactions()] == ["m-1", "m-2"]
        assert [t.txid for t in opened.unfinished()] == ["m-2"]
        stored = opened.read("m-2")
        assert stored is not None and not stored.finished
        info = opened.info()
        assert (info.transactions, info.unfinished, info.records) == (2, 1, 4)
    with LmdbLog(writer.log, readonly=True) as fresh:  # outside a snapshot: the newest state
        assert [t.txid for t in fresh.unfinished()] == ["a-new"]
        with fresh.snapshot():
            assert [t.txid for t in fresh.transactions()] == ["a-new", "m-1", "m-2"]
