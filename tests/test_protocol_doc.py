"""docs/protocol.md, "Synced writes per transaction", is what the coordinator does: each row
of that table is run on a real format-2 log and its synced writes counted."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dtc_wal import READ_ONLY, TransactionAborted, TransactionCoordinator, VoteNo

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
N, K = 3, 1  # the table's n (participants or steps) and k (the failing step, from 0)


class Member:
    def __init__(self, name: str, vote: str = "yes") -> None:
        self.name = name
        self.vote = vote

    def prepare(self, txid: str, data: Any) -> object:
        if self.vote == "no":
            raise VoteNo("no")
        return READ_ONLY if self.vote == "read-only" else None

    def commit(self, txid: str) -> None:
        pass

    def rollback(self, txid: str) -> None:
        pass


class Listing(Member):
    lists_prepared = True


class OnePhase(Member):
    def commit_one_phase(self, txid: str, data: Any) -> None:
        pass


def _enlist(coord: TransactionCoordinator, txid: str, members: list[Member]) -> None:
    for member in members:
        coord.enlist_participant(txid, member)


def step_done(txid: str, data: Any) -> None:
    pass


def step_fails(txid: str, data: Any) -> None:
    raise RuntimeError("step failed")


def undo(txid: str) -> None:
    pass


def _saga(coord: TransactionCoordinator, txid: str, fail_at: int | None) -> None:
    for i in range(N):
        coord.register_participant(txid, f"s{i}", step_fails if i == fail_at else step_done, undo)


Step = Callable[[TransactionCoordinator, str], None]


def _commit(coord: TransactionCoordinator, txid: str) -> None:
    coord.commit_transaction(txid, {"k": 1})


def _aborts(coord: TransactionCoordinator, txid: str) -> None:
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)


PATHS: dict[str, tuple[Step, Step]] = {
    "2PC commit, *n* participants": (
        lambda c, t: _enlist(c, t, [Member(f"p{i}") for i in range(N)]),
        _commit,
    ),
    "2PC commit, every participant `lists_prepared`": (
        lambda c, t: _enlist(c, t, [Listing(f"p{i}") for i in range(N)]),
        _commit,
    ),
    "2PC abort (a no vote)": (
        lambda c, t: _enlist(c, t, [Member("p0"), Member("p1"), Member("p2", "no")]),
        _aborts,
    ),
    "`rollback_transaction` before commit": (
        lambda c, t: _enlist(c, t, [Member("p0"), Member("p1")]),
        lambda c, t: c.rollback_transaction(t),
    ),
    "one-phase commit (lone participant with `commit_one_phase`)": (
        lambda c, t: _enlist(c, t, [OnePhase("p0")]),
        _commit,
    ),
    "saga of *n* steps, committed": (lambda c, t: _saga(c, t, None), _commit),
    "saga failing at step *k* (from 0)": (lambda c, t: _saga(c, t, K), _aborts),
}


def documented() -> dict[str, int]:
    """``{path: synced writes}`` as the table says, with n = N and k = K."""
    text = DOC.read_text()
    table = text.split("### Synced writes per transaction", 1)[1].split("\n\n", 2)[1]
    rows: dict[str, int] = {}
    for line in table.splitlines()[2:]:
        path, count = (cell.strip() for cell in line.strip("|").split("|"))
        found = re.match(r"(\d+)|\*([nk])\* \+ (\d+)", count)
        assert found is not None, line
        if found.group(1) is not None:
            rows[path] = int(found.group(1))
        else:
            rows[path] = (N if found.group(2) == "n" else K) + int(found.group(3))
    return rows


def test_the_table_lists_every_path_tested_here() -> None:
    assert set(documented()) == set(PATHS)


@pytest.mark.parametrize("path", list(PATHS))
def test_synced_writes_per_path_are_the_documented_ones(tmp_path: Path, path: str) -> None:
    build, finish = PATHS[path]
    with TransactionCoordinator(tmp_path, recovery_interval=None) as coord:
        coord.log.lazy_delay = 60.0  # lazy appends wait for a sync: only forced ones count
        txid = coord.begin_transaction()
        build(coord, txid)
        before = coord.log.syncs
        finish(coord, txid)
        synced = coord.log.syncs - before
        coord.flush()
        stored = coord.log.read(txid)
    assert synced == documented()[path]
    assert stored is not None and stored.finished  # every path ends in the log
