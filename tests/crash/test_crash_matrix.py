"""The crash matrix: a real workload process is SIGKILLed at every named crash point on
every path (2PC commit, 2PC abort, saga success, saga compensation, 2PC commit with an
asynchronous phase two, 2PC commit on participants that list what they hold prepared,
one-phase commit), a coordinator restarts on its log, and the invariants of
dtc_wal.testing.checks must hold. No path passes an opening point (nothing is logged at
begin or enlist): those cells are listed and skipped, and the census checks the table.

Each cell kills at the n-th pass of its point, for every pass one transaction makes, and
once more at the first pass of the workload's second transaction (so the first one's
outcome was acknowledged to the caller before the kill). Cells run in parallel (a few
processes at a time) in a module fixture; each test then asserts on its own cell.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
from pathlib import Path

import pytest
from matrix_table import (
    HITS_PER_TRANSACTION,
    SCENARIO_OPTIONS,
    TRACELESS,
    WAL_HITS_TRIED,
    WAL_SYNCS_AT_LEAST,
)

from dtc_wal.testing import TRANSACTION_POINTS
from dtc_wal.testing.checks import CheckResult, read_acks
from dtc_wal.testing.harness import Case, Recovered, Run

pytestmark = pytest.mark.slow

SCENARIOS = tuple(HITS_PER_TRANSACTION)
WORKERS = min(4, (os.cpu_count() or 1) + 1)


@dataclasses.dataclass(frozen=True)
class Cell:
    scenario: str
    point: str
    hit: int  # 0: the point is never passed on this path
    second_transaction: bool = False

    @property
    def id(self) -> str:
        base = f"{self.scenario}-{self.point}"
        return f"{base}-{self.hit}" if self.hit else base

    @property
    def traceless(self) -> bool:
        """The kill comes before anything of its transaction is durable anywhere."""
        if (self.point, self.hit) == ("wal.before-sync", 1):  # precedes every sync
            return True
        first_pass = self.hit == 1 or self.second_transaction
        return first_pass and self.point in TRACELESS.get(self.scenario, frozenset())


def _cells() -> list[Cell]:
    cells = []
    for scenario, table in HITS_PER_TRANSACTION.items():
        for point in TRANSACTION_POINTS:
            if point not in table:
                cells.append(Cell(scenario, point, 0))
                continue
            per_tx = table[point]
            if per_tx is None:
                tried = min(WAL_HITS_TRIED, WAL_SYNCS_AT_LEAST.get(scenario, 4))
                cells += [Cell(scenario, point, n) for n in range(1, tried + 1)]
            else:
                cells += [Cell(scenario, point, n) for n in range(1, per_tx + 1)]
                cells.append(Cell(scenario, point, per_tx + 1, True))
    return cells


CELLS = _cells()


@dataclasses.dataclass
class Outcome:
    run: Run
    recovered: Recovered
    check: CheckResult
    acknowledged: int


def _run_cell(cell: Cell, root: Path) -> Outcome:
    case = Case.create(root)
    options = SCENARIO_OPTIONS.get(cell.scenario, {})
    run = case.run(cell.scenario, count=2, crash_at=f"{cell.point}:{cell.hit}", **options)
    if not run.killed_by_sigkill:
        return Outcome(run, Recovered({}, [], [], 0), CheckResult(), 0)
    recovered = case.restart()
    acks = read_acks(case.acks)
    return Outcome(run, recovered, case.check(), len(acks.committed | acks.aborted))


@pytest.fixture(scope="module")
def matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[Cell, cf.Future[Outcome]]:
    """Run every selected reachable cell, a few at a time; map cell -> future outcome."""
    selected = [
        item.callspec.params["cell"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_crash_matrix"
    ]
    pool = cf.ThreadPoolExecutor(WORKERS)
    futures = {
        cell: pool.submit(_run_cell, cell, tmp_path_factory.mktemp(cell.id))
        for cell in selected
        if cell.hit
    }
    pool.shutdown(wait=False)
    return futures


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_crash_matrix(cell: Cell, matrix: dict[Cell, cf.Future[Outcome]]) -> None:
    if not cell.hit:
        pytest.skip(f"{cell.point} is never passed on the {cell.scenario} path (see census)")
    outcome = matrix[cell].result(timeout=300)
    assert outcome.run.killed_by_sigkill, f"not killed at {cell.point}: {outcome.run.describe()}"
    assert outcome.run.ready
    assert outcome.run.log_format == 2
    assert outcome.recovered.in_doubt == []
    assert outcome.recovered.unfinished == []
    assert outcome.check.ok, str(outcome.check)
    if not cell.traceless:
        assert outcome.check.transactions >= 1
    if cell.second_transaction:
        # the first transaction's outcome was reported to its caller before the kill
        assert outcome.acknowledged == 1
        assert outcome.check.transactions == (1 if cell.traceless else 2)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_census_matches_the_table(scenario: str, tmp_path: Path) -> None:
    """Each path passes exactly the points the matrix table says, as often as it says."""
    case = Case.create(tmp_path)
    run = case.run(scenario, count=2, census=True, **SCENARIO_OPTIONS.get(scenario, {}))
    assert run.returncode == 0, run.describe()
    assert run.log_format == 2
    assert run.census is not None
    expected = HITS_PER_TRANSACTION[scenario]
    assert set(run.census) == set(expected)
    for point, per_tx in expected.items():
        if per_tx is None:
            assert run.census[point] >= WAL_SYNCS_AT_LEAST.get(scenario, 4), point
        else:
            assert run.census[point] == 2 * per_tx, point
    assert case.check().ok
