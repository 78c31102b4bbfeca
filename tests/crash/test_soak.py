"""Random-kill soak: SIGKILL a process running concurrent transactions at random moments,
many times, on the same log; every few kills restart, recover and check the invariants.

``DTC_SOAK_KILLS`` sets the number of kills (default 100, what CI runs; e.g. 10000 for a
long run outside CI) and ``DTC_SOAK_SEED`` replays a run (the seed is printed on failure).
Kills land anywhere: during start-up, during the recovery a restarted process runs on open,
and in the middle of concurrent 2PC and saga transactions with the background recovery
loop running.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import random
import shutil
from pathlib import Path

import pytest

from dtc_wal.testing.checks import read_acks
from dtc_wal.testing.harness import Case

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("DTC_SOAK_KILLS", "100"))
SEED = int(os.environ.get("DTC_SOAK_SEED", str(random.randrange(2**32))))
LANES = 2
EPOCH = 10
"""Kills on one log before it is recovered, checked and replaced by a fresh one."""


@dataclasses.dataclass
class Lane:
    kills: int = 0
    killed_after_ready: int = 0
    checks: int = 0
    transactions: int = 0
    acknowledged: int = 0
    violations: list[str] = dataclasses.field(default_factory=list)


def _soak_lane(kills: int, root: Path, seed: int) -> Lane:
    rng = random.Random(seed)
    lane = Lane()
    case = Case.create(root / "epoch-0")
    for k in range(kills):
        if k and k % EPOCH == 0:
            case = Case.create(root / f"epoch-{k // EPOCH}")
        wait_ready = rng.random() < 0.85
        run = case.run(
            "mixed",
            count=0,
            threads=4,
            seed=rng.randrange(2**31),
            recovery_interval=0.02,
            wait_ready=wait_ready,
            kill_after=rng.uniform(0.0, 0.25) if wait_ready else rng.uniform(0.05, 0.5),
        )
        lane.kills += 1
        lane.killed_after_ready += run.ready
        if not run.killed_by_sigkill:
            lane.violations.append(f"kill {k}: not killed by SIGKILL: {run.describe()}")
            break
        if (k + 1) % EPOCH and k + 1 != kills:
            continue
        recovered = case.restart(settle=10.0)  # 2pc-incomplete fails p1's first commits
        result = case.check()
        lane.checks += 1
        lane.transactions += result.transactions
        lane.acknowledged += len(read_acks(case.acks).committed)
        problems = [f"in doubt after recovery: {d}" for d in recovered.in_doubt]
        problems += [f"unfinished after recovery: {t}" for t in recovered.unfinished]
        problems += result.violations
        if problems:
            lane.violations += [f"{case.root} (after kill {k}): {p}" for p in problems]
            break  # keep the evidence
        shutil.rmtree(case.root)
    return lane


def test_random_kill_soak(tmp_path: Path) -> None:
    kills = KILLS
    rng = random.Random(SEED)
    per_lane = [kills // LANES + (i < kills % LANES) for i in range(LANES)]
    with cf.ThreadPoolExecutor(LANES) as pool:
        futures = [
            pool.submit(_soak_lane, n, tmp_path / f"lane-{i}", rng.randrange(2**32))
            for i, n in enumerate(per_lane)
        ]
        lanes = [f.result() for f in futures]
    print(f"soak seed {SEED}:", *lanes, sep="\n  ")
    violations = [v for lane in lanes for v in lane.violations]
    assert violations == [], f"DTC_SOAK_SEED={SEED}: " + "\n".join(violations[:20])
    assert sum(lane.kills for lane in lanes) == kills
    assert sum(lane.checks for lane in lanes) >= kills // EPOCH
    # the kills hit running work, not only process start-up
    assert sum(lane.killed_after_ready for lane in lanes) > kills // 2
    assert sum(lane.transactions for lane in lanes) > kills
    assert sum(lane.acknowledged for lane in lanes) > 0
