"""Crashes during recovery: the process that recovers a killed coordinator's log is itself
SIGKILLed at each crash point recovery passes; a third start must still finish everything.
"""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import pytest

from dtc_wal.testing.harness import Case

pytestmark = pytest.mark.slow

WAL = {"wal.before-sync": 1, "wal.after-sync": 1}

#: first kill (scenario, point) -> what recovery then passes, and how often
WORK_LEFT: dict[str, tuple[str, str, dict[str, int]]] = {
    "re-send-commit": (
        "2pc-commit",
        "decision.after-commit-log",
        {**WAL, "commit.after-first": 1, "commit.after-all": 1, "complete.after-log": 1},
    ),
    "presumed-abort-2pc": (
        "2pc-commit",
        "prepare.after-all",
        {
            **WAL,
            "decision.after-abort-log": 1,
            "rollback.after-first": 1,
            "rollback.after-all": 1,
            "complete.after-log": 1,
        },
    ),
    "presumed-abort-saga": (
        "saga-commit",
        "saga.after-step-log:2",
        {
            **WAL,
            "decision.after-abort-log": 1,
            "saga.after-compensation": 3,  # s2 (may have run), s1, s0
            "complete.after-log": 1,
        },
    ),
}

CELLS = [
    (work, f"{point}:{n}")
    for work, (_, _, hits) in WORK_LEFT.items()
    for point, count in hits.items()
    for n in range(1, count + 1)
]


def _leave_work(root: Path, work: str) -> Case:
    scenario, point, _ = WORK_LEFT[work]
    case = Case.create(root)
    run = case.run(scenario, crash_at=point)
    assert run.killed_by_sigkill, run.describe()
    return case


@pytest.mark.parametrize("work", WORK_LEFT)
def test_recovery_census(work: str, tmp_path: Path) -> None:
    case = _leave_work(tmp_path, work)
    run = case.recover_process(census=True)
    assert run.returncode == 0, run.describe()
    expected = WORK_LEFT[work][2]
    assert run.census is not None and set(run.census) == set(expected)
    for point, count in expected.items():
        if not point.startswith("wal."):  # syncs depend on batching
            assert run.census[point] == count, point
    assert case.check().ok


def test_killed_recovery_is_recovered(tmp_path: Path) -> None:
    """Every cell: kill the workload, kill its recovery at the cell's point, recover again."""

    def cell(work: str, crash_at: str) -> list[str]:
        case = _leave_work(tmp_path / f"{work}-{crash_at}", work)
        run = case.recover_process(crash_at=crash_at)
        if not run.killed_by_sigkill:
            return [f"{work} @ {crash_at}: recovery was not killed: {run.describe()}"]
        recovered = case.restart()
        problems = [f"in doubt: {d}" for d in recovered.in_doubt]
        problems += [f"unfinished: {t}" for t in recovered.unfinished]
        problems += case.check().violations
        return [f"{work} @ {crash_at}: {p}" for p in problems]

    with cf.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: cell(*c), CELLS))
    assert [p for r in results for p in r] == []
    assert len(results) == len(CELLS) >= 15
