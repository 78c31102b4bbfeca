"""Which crash point is passed how often by one transaction of each workload scenario, on
the (format-2) log.

The workload runs transactions of width 3 (three 2PC participants p0..p2, or saga steps
s0..s2; in 2pc-abort p2 votes no, in saga-compensate s2's action fails; 2pc-async commits
with ``wait=False`` and waits on the handle; 2pc-listing has l0..l2, which list what they
hold prepared, so no opening write is forced; 1pc has one participant, committed in one
phase, so nothing is forced and no protocol point is passed). ``None`` means "at least
once, a number that depends on batching" (the log's sync points; see
``WAL_SYNCS_AT_LEAST``). A point missing from a scenario's row is never passed on that
path: the log is written at commit (Opened -- unless every participant lists what it
holds prepared: then it rides the decision's sync -- and Decided forced, Ended lazy, for 2PC;
StepDone forced per step but the last, Decided and Ended forced together, for a saga; one
lazy append after the member's own commit, for one phase): nothing is logged at begin or
enlist.
``test_census_matches_the_table`` checks the table against what each path passes.
"""

from __future__ import annotations

WAL = {"wal.before-sync": None, "wal.after-sync": None}
PREPARE_AND_COMMIT = {
    "prepare.before-send": 1,
    "prepare.after-first": 1,
    "prepare.after-all": 1,
    "decision.after-commit-log": 1,
    "commit.after-first": 1,
    "commit.after-all": 1,
    "complete.after-log": 1,
}

HITS_PER_TRANSACTION: dict[str, dict[str, int | None]] = {
    "2pc-commit": {**WAL, **PREPARE_AND_COMMIT},
    "2pc-abort": {
        **WAL,
        "prepare.before-send": 1,
        "prepare.after-first": 1,
        "decision.after-abort-log": 1,
        "rollback.after-first": 1,
        "rollback.after-all": 1,
        "complete.after-log": 1,
    },
    "saga-commit": {
        **WAL,
        "saga.after-step": 3,
        "saga.after-step-log": 2,
        "decision.after-commit-log": 1,
        "complete.after-log": 1,
    },
    "saga-compensate": {
        **WAL,
        "saga.after-step": 2,
        "saga.after-step-log": 2,
        "decision.after-abort-log": 1,
        "saga.after-compensation": 3,
        "complete.after-log": 1,
    },
    "2pc-async": {**WAL, **PREPARE_AND_COMMIT},
    "2pc-listing": {**WAL, **PREPARE_AND_COMMIT},
    # the lone participant's commit is the decision; its history is appended lazily
    "1pc": {**WAL},
}

SCENARIO_OPTIONS: dict[str, dict[str, float]] = {"2pc-listing": {"lazy_delay": 0.3}}
"""Workload options per scenario (census and matrix alike). 2pc-listing lets lazy records
wait 0.3 s for a batch instead of 2 ms, so a kill before the decision finds the log not
knowing the transaction while participants hold it prepared: the orphan path, every time."""

WAL_SYNCS_AT_LEAST: dict[str, int] = {"2pc-listing": 3, "1pc": 1}
"""Log syncs the workload's two transactions pass at least (default 4: two each). In
2pc-listing the opening rides the decision (tx 1's completion rides tx 2's decision, tx 2's
goes at close); in 1pc both histories are lazy and may share one sync."""

TRACELESS: dict[str, frozenset[str]] = {"2pc-listing": frozenset({"prepare.before-send"})}
"""Points whose first pass in a transaction comes before anything of it is durable anywhere
(log or participant): a kill there leaves no trace of that transaction (besides the log's
first ``wal.before-sync``, which precedes every sync)."""

WAL_HITS_TRIED = 4
"""The matrix kills at the first 4 passes of each log sync point (one transaction has
at least 2 on most paths, so later ones land in the second transaction), or at as many as
``WAL_SYNCS_AT_LEAST`` guarantees."""
