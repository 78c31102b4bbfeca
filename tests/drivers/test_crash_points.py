"""Each transaction crash point, armed in a child process running the Engine on a format-2
log: the child dies by SIGKILL at it, the log holds what the point promises, and a recovery
pass in this process then finishes the transaction all-or-nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dtc_wal._crash_hooks import TRANSACTION_POINTS
from dtc_wal.drivers import Engine
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.registry import ParticipantRegistry
from dtc_wal.testing.durable_reader import read_states
from dtc_wal.testing.durable_registry import register_durable
from dtc_wal.testing.durable_store import COMMITTED_STATES, UNDONE_STATES

CHILD = Path(__file__).with_name("child_crash_point.py")

OP, D, S, E = "Opened", "Decided", "StepDone", "Ended"
# point -> (scenario, the record kinds the log may hold at the kill, what each member holds)
CASES: dict[str, tuple[str, tuple[tuple[str, ...], ...], str]] = {
    "wal.before-sync": ("commit", ((),), "untouched"),
    "wal.after-sync": ("commit", ((OP,),), "untouched"),
    "prepare.before-send": ("commit", ((OP,),), "untouched"),
    "prepare.after-first": ("commit", ((OP,),), "some prepared"),
    "prepare.after-all": ("commit", ((OP,),), "all prepared"),
    "decision.after-commit-log": ("commit", ((OP, D),), "all prepared"),
    "commit.after-first": ("commit", ((OP, D),), "some committed"),
    "commit.after-all": ("commit", ((OP, D),), "all committed"),
    "complete.after-log": ("commit", ((OP, D), (OP, D, E)), "all committed"),
    "decision.after-abort-log": ("abort", ((OP,), (OP, D)), "none undone"),
    # the first rollback acknowledged may be the no voter's (refused: a no-op rollback)
    "rollback.after-first": ("abort", ((OP,), (OP, D)), "no committed"),
    "rollback.after-all": ("abort", ((OP,), (OP, D)), "all undone"),
    "saga.after-step": ("saga", ((OP,),), "s0 applied"),
    "saga.after-step-log": ("saga", ((OP, S),), "s0 applied"),
    "saga.after-compensation": ("saga-fail", ((OP, S, S), (OP, S, S, D)), "some undone"),
}


def test_every_transaction_point_is_covered() -> None:
    assert set(CASES) == set(TRANSACTION_POINTS)


def holds(expected: str, states: dict[str, str], names: tuple[str, ...]) -> bool:
    got = [states.get(n) for n in names]
    if expected == "untouched":
        return got == [None] * len(names)
    if expected == "no committed":
        return not any(s in COMMITTED_STATES for s in got)
    if expected == "s0 applied":
        return got == ["applied", None, None]
    quantifier, state = expected.split(" ", 1)
    if state == "undone":
        hits = [s in UNDONE_STATES and s != "refused" for s in got]
    else:
        hits = [s == state for s in got]
    if quantifier == "all":
        return all(hits) if state != "undone" else hits[:2] == [True, True]
    if quantifier == "some":
        return any(hits)
    return not any(hits)


@pytest.mark.parametrize("point", sorted(CASES))
def test_the_child_dies_at_the_point_and_recovery_finishes(tmp_path: Path, point: str) -> None:
    scenario, kinds, expected = CASES[point]
    log_dir, state_dir = tmp_path / "log", tmp_path / "state"
    state_dir.mkdir()
    child = subprocess.run(
        [sys.executable, str(CHILD), str(log_dir), str(state_dir), point, scenario],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert f"crash point {point} reached" in child.stderr
    txid = child.stdout.split()[1]
    saga = scenario.startswith("saga")
    names = ("s0", "s1", "s2") if saga else ("p0", "p1", "p2")

    with LmdbLog(log_dir) as log:
        stored = log.read(txid)
        held = () if stored is None else tuple(type(r).__name__ for r in stored.records)
        assert held in kinds, held
        at_kill = read_states(state_dir).states.get(txid, {})
        assert holds(expected, at_kill, names), at_kill

        registry = register_durable(ParticipantRegistry(), state_dir, steps=("s0", "s1", "s2"))
        with Engine(log, registry) as engine:
            report = engine.recover()
        assert report.clean, report.in_doubt
        log.flush()
        assert list(log.unfinished()) == []
    states = read_states(state_dir)
    assert states.anomalies == []
    final = [states.states.get(txid, {}).get(n) for n in names]
    took = [s in COMMITTED_STATES for s in final]
    assert all(took) or not any(took), final
    if point.startswith(("decision.after-commit", "commit.", "complete.")):
        assert all(took)  # a durable commit decision is carried out everywhere
