"""Every path a transaction may take in format 2, written to an ``LmdbLog`` and read back,
folds to its final state with nothing pending; once ``Ended``, no record of any type is
accepted, by the fold or by the log. The rules one by one are
tests/protocol/test_transaction.py; this covers the allowed histories end to end (what
tests/test_history.py checked of the format-1 transition table)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dtc_wal.errors import InvalidTransitionError
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol import (
    Acked,
    Decided,
    Ended,
    Failed,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    Outcome,
    OutOfOrderError,
    Record,
    Resolved,
    StepDone,
    TxState,
    Vote,
    fold,
)

S = MemberState
TX = "tx-1"
TWO = (MemberSpec("a", "f", {"x": 1}), MemberSpec("b"))
STEPS = (MemberSpec("s1"), MemberSpec("s2"), MemberSpec("s3"))
YES2 = ((0, Vote.YES), (1, Vote.YES))


def two_pc(*rest: Record) -> list[Record]:
    return [Opened(TX, 1.0, Mode.TWO_PHASE, TWO, {"k": 1}), *rest]


def saga(*rest: Record) -> list[Record]:
    return [Opened(TX, 1.0, Mode.SAGA, STEPS), *rest]


ALLOWED: dict[str, tuple[list[Record], TxState]] = {
    "2pc-commit": (
        two_pc(
            Decided(TX, 2.0, Outcome.COMMIT, YES2),
            Acked(TX, 3.0, ((1, S.COMMITTED),)),
            Ended(TX, 4.0, ((0, S.COMMITTED),)),
        ),
        TxState.COMMITTED,
    ),
    "2pc-abort-before-prepare": (
        two_pc(
            Decided(TX, 2.0, Outcome.ABORT, reason="caller"),
            Ended(TX, 3.0, ((0, S.ROLLED_BACK), (1, S.ROLLED_BACK))),
        ),
        TxState.ABORTED,
    ),
    "2pc-abort-after-one-yes": (
        two_pc(
            Decided(TX, 2.0, Outcome.ABORT, ((0, Vote.YES),), reason="b voted no"),
            Ended(TX, 3.0, ((0, S.ROLLED_BACK), (1, S.ROLLED_BACK))),
        ),
        TxState.ABORTED,
    ),
    "2pc-read-only-voter": (
        two_pc(
            Decided(TX, 2.0, Outcome.COMMIT, ((0, Vote.YES), (1, Vote.READ_ONLY))),
            Ended(TX, 3.0, ((0, S.COMMITTED),)),
        ),
        TxState.COMMITTED,
    ),
    "2pc-commit-after-failed-attempts": (
        two_pc(
            Decided(TX, 2.0, Outcome.COMMIT, YES2),
            Acked(TX, 3.0, ((0, S.COMMITTED),)),
            Failed(TX, 4.0, 1, Op.COMMIT, "ConnectionError: down", 4),
            Failed(TX, 5.0, 1, Op.COMMIT, "ConnectionError: down", 1),
            Ended(TX, 6.0, ((1, S.COMMITTED),)),
        ),
        TxState.COMMITTED,
    ),
    "2pc-operator-resolution": (
        two_pc(
            Decided(TX, 2.0, Outcome.COMMIT, YES2),
            Acked(TX, 3.0, ((0, S.COMMITTED),)),
            Resolved(TX, 4.0, 1, Outcome.COMMIT, "alice", "host gone"),
            Ended(TX, 4.0),
        ),
        TxState.COMMITTED,
    ),
    "2pc-undecided-resolved-abort": (
        two_pc(
            Decided(TX, 2.0, Outcome.ABORT, reason="by hand", actor="alice"),
            Resolved(TX, 3.0, 0, Outcome.ABORT, "alice", "rolled back by hand"),
            Ended(TX, 4.0, ((1, S.ROLLED_BACK),)),
        ),
        TxState.ABORTED,
    ),
    "empty-commit": (
        [
            Opened(TX, 1.0, Mode.TWO_PHASE, ()),
            Decided(TX, 2.0, Outcome.COMMIT),
            Ended(TX, 3.0),
        ],
        TxState.COMMITTED,
    ),
    "empty-abort": (
        [Opened(TX, 1.0, Mode.TWO_PHASE, ()), Decided(TX, 2.0, Outcome.ABORT), Ended(TX, 3.0)],
        TxState.ABORTED,
    ),
    "saga-commit": (
        saga(
            StepDone(TX, 2.0, 0),
            StepDone(TX, 3.0, 1),
            StepDone(TX, 4.0, 2),
            Decided(TX, 5.0, Outcome.COMMIT),
            Ended(TX, 5.0),
        ),
        TxState.COMMITTED,
    ),
    "saga-abort-at-step-2": (
        saga(
            StepDone(TX, 2.0, 0),
            Decided(TX, 3.0, Outcome.ABORT, reason="s2 failed"),
            Acked(TX, 4.0, ((2, S.SKIPPED), (1, S.ROLLED_BACK))),
            Ended(TX, 5.0, ((0, S.ROLLED_BACK),)),
        ),
        TxState.ABORTED,
    ),
    "saga-compensation-failed-then-done": (
        saga(
            StepDone(TX, 2.0, 0),
            Decided(TX, 3.0, Outcome.ABORT, reason="s2 failed"),
            Failed(TX, 4.0, 0, Op.COMPENSATE, "down", 3),
            Ended(TX, 5.0, ((0, S.ROLLED_BACK), (1, S.ROLLED_BACK), (2, S.SKIPPED))),
        ),
        TxState.ABORTED,
    ),
    "saga-rollback-before-any-step": (
        saga(
            Decided(TX, 2.0, Outcome.ABORT),
            Ended(TX, 3.0, ((2, S.SKIPPED), (1, S.SKIPPED), (0, S.SKIPPED))),
        ),
        TxState.ABORTED,
    ),
}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[LmdbLog]:
    with LmdbLog(tmp_path / "log") as opened:
        yield opened


@pytest.mark.parametrize("path", list(ALLOWED))
def test_an_allowed_path_written_and_read_back_folds_to_its_end(
    log: LmdbLog, tmp_path: Path, path: str
) -> None:
    records, final = ALLOWED[path]
    for record in records:  # one append each, as a coordinator would log them
        log.append([record])
    log.close()
    with LmdbLog(tmp_path / "log", readonly=True) as reread:
        stored = reread.read(TX)
        assert list(reread.unfinished()) == []
    assert stored is not None and stored.damage is None and stored.finished
    assert list(stored.records) == records
    tx = fold(stored.records)
    assert tx.state is final and tx.ended
    assert tx.pending() == []
    assert all(m.state.settled for m in tx.members)


def test_failed_records_count_attempts_and_keep_the_last_error() -> None:
    records, _ = ALLOWED["2pc-commit-after-failed-attempts"]
    tx = fold(records[:5])  # before Ended
    member = tx.members[1]
    assert (member.attempts, member.error, member.state) == (5, "ConnectionError: down", S.PREPARED)
    assert tx.pending() == [1] and tx.state is TxState.DECIDED_COMMIT


def test_a_resolution_records_who_and_why() -> None:
    records, _ = ALLOWED["2pc-operator-resolution"]
    tx = fold(records[:4])
    member = tx.members[1]
    assert member.state is S.RESOLVED and member.state.settled
    assert member.resolution == Resolved(TX, 4.0, 1, Outcome.COMMIT, "alice", "host gone")


AFTER_ENDED: list[Record] = [
    Opened(TX, 9.0, Mode.TWO_PHASE, TWO),
    StepDone(TX, 9.0, 0),
    Decided(TX, 9.0, Outcome.ABORT),
    Acked(TX, 9.0, ((0, S.COMMITTED),)),
    Ended(TX, 9.0),
    Failed(TX, 9.0, 0, Op.COMMIT, "late", 1),
    Resolved(TX, 9.0, 0, Outcome.COMMIT, "alice", "late"),
]


def test_the_after_ended_list_covers_every_record_type() -> None:
    from dtc_wal.log.lmdb.layout import TYPE_CODES

    assert {type(r) for r in AFTER_ENDED} == set(TYPE_CODES)


@pytest.mark.parametrize("bad", AFTER_ENDED, ids=lambda r: type(r).__name__)
def test_nothing_is_accepted_after_ended(log: LmdbLog, bad: Record) -> None:
    records, _ = ALLOWED["2pc-commit"]
    tx = fold(records)
    before = tx.copy()
    with pytest.raises(OutOfOrderError, match=TX):
        tx.apply(bad)
    assert tx == before  # a refused record changes nothing
    for record in records:
        log.append([record])
    with pytest.raises(InvalidTransitionError, match="already"):
        log.append([bad])  # the log refuses it too: nothing is appended after Ended
    stored = log.read(TX)
    assert stored is not None and list(stored.records) == records
