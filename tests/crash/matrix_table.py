"""Which crash point is passed how often by one transaction of each workload scenario.

The workload runs transactions of width 3 (three 2PC participants p0..p2, or saga steps
s0..s2; in 2pc-abort p2 votes no, in saga-compensate s2's action fails). ``None`` means
"at least once, a number that depends on batching" (the log's sync points). A point
missing from a scenario's row is never passed on that path.
"""

from __future__ import annotations

WAL = {"wal.before-sync": None, "wal.after-sync": None}
OPENING = {"begin.after-log": 1, "enlist.after-log": 1}

HITS_PER_TRANSACTION: dict[str, dict[str, int | None]] = {
    "2pc-commit": {
        **WAL,
        **OPENING,
        "prepare.before-send": 1,
        "prepare.after-first": 1,
        "prepare.after-all": 1,
        "decision.after-commit-log": 1,
        "commit.after-first": 1,
        "commit.after-all": 1,
        "complete.after-log": 1,
    },
    "2pc-abort": {
        **WAL,
        **OPENING,
        "prepare.before-send": 1,
        "prepare.after-first": 1,
        "decision.after-abort-log": 1,
        "rollback.after-first": 1,
        "rollback.after-all": 1,
        "complete.after-log": 1,
    },
    "saga-commit": {
        **WAL,
        **OPENING,
        "saga.after-step": 3,
        "saga.after-step-log": 2,
        "decision.after-commit-log": 1,
        "complete.after-log": 1,
    },
    "saga-compensate": {
        **WAL,
        **OPENING,
        "saga.after-step": 2,
        "saga.after-step-log": 2,
        "decision.after-abort-log": 1,
        "saga.after-compensation": 3,
        "complete.after-log": 1,
    },
}

WAL_HITS_TRIED = 4
"""The matrix kills at the first 4 passes of each log sync point (one transaction has
at least 2 on every path, so later ones land in the second transaction)."""
