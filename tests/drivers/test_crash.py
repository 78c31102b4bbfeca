"""A process committing through the Engine is SIGKILLed mid-commit; a recovery pass in
another process finishes every transaction all-or-nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dtc_wal.drivers import Engine
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.registry import ParticipantRegistry
from dtc_wal.testing.durable_reader import read_states
from dtc_wal.testing.durable_registry import register_durable

CHILD = Path(__file__).with_name("child_engine.py")
COMMITTED = "committed"


@pytest.mark.parametrize("decisions", [1, 12])
def test_sigkill_mid_commit_then_recovery_finishes_all_or_nothing(
    tmp_path: Path, decisions: int
) -> None:
    log_dir, state_dir = tmp_path / "log", tmp_path / "state"
    state_dir.mkdir()
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(log_dir), str(state_dir), "4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    decided: list[str] = []
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        while len(decided) < decisions:
            line = child.stdout.readline()
            assert line, "the child died before deciding"
            decided.append(line.split()[1])
        os.kill(child.pid, signal.SIGKILL)  # decided, commits being delivered
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    registry = register_durable(ParticipantRegistry(), state_dir)
    with LmdbLog(log_dir) as log:
        unfinished = [s.txid for s in log.unfinished()]
        assert unfinished  # the kill landed with commits under way
        with Engine(log, registry) as engine:
            report = engine.recover()
        log.flush()
        assert report.clean, report.in_doubt
        assert sorted(report.finished) == sorted(unfinished)
        assert list(log.unfinished()) == []
    states = read_states(state_dir)
    assert states.anomalies == []
    for txid, by_member in states.states.items():
        committed = [s == COMMITTED for s in by_member.values()]
        assert all(committed) or not any(committed), (txid, by_member)
    for txid in decided:  # a durable decision is carried out everywhere
        assert states.states[txid] == dict.fromkeys(("p0", "p1", "p2"), COMMITTED)
