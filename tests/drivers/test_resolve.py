"""Engine.resolve(): an operator's resolution through a machine seeded from the log, with
the old core's refusals (tests/test_resolve.py shows what users see)."""

from __future__ import annotations

import pytest
from helpers import FOREVER, Failures, Journal, RecordingParticipant

from dtc_wal.drivers import Engine, EngineOptions
from dtc_wal.errors import (
    InvalidOptionError,
    InvalidParticipantError,
    TransactionAborted,
    TransactionFinishedError,
    TransactionStateError,
    UnknownTransactionError,
)
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol import (
    Decided,
    Ended,
    MemberSpec,
    MemberState,
    Mode,
    Opened,
    Outcome,
    Resolved,
    TxState,
    Vote,
)
from dtc_wal.registry import ParticipantRegistry

from .conftest import FAST_RETRIES


def stuck_abort(engine: Engine, journal: Journal) -> str:
    """A transaction decided abort whose two members cannot roll back (parked here)."""
    txid = engine.begin()
    for name in ("warehouse", "bank"):
        engine.enlist(
            txid, RecordingParticipant(name, journal, rollback_failures=Failures(FOREVER))
        )
    engine.enlist(txid, RecordingParticipant("refuser", journal, vote_no=True))
    with pytest.raises(TransactionAborted):
        engine.commit(txid)
    return txid


def test_members_settled_by_hand_one_then_the_rest(engine: Engine, log: LmdbLog) -> None:
    journal = Journal()
    txid = stuck_abort(engine, journal)
    tx = engine.resolve(txid, Outcome.ABORT, member="warehouse", reason="undone", actor="ops")
    assert tx.state is TxState.DECIDED_ABORT
    resolution = tx.members[0].resolution
    assert isinstance(resolution, Resolved) and resolution.actor == "ops"
    assert resolution.reason == "undone"
    calls = len(journal.calls)
    engine.recover()  # the parked run goes on without re-sending to the resolved member
    assert "warehouse" not in {who for who, _, _ in journal.calls[calls:]}
    assert ("bank", "rollback", txid) in journal.calls[calls:]
    tx = engine.resolve(txid, Outcome.ABORT, reason="bank undone too")
    assert tx.ended and tx.state is TxState.ABORTED
    assert engine.read(txid) == tx
    assert engine.parked == []
    log.flush()
    kinds = [type(r).__name__ for r in log.read(txid).records]  # type: ignore[union-attr]
    assert kinds[-2:] == ["Resolved", "Ended"]


def test_refusals_carry_the_old_messages(engine: Engine) -> None:
    journal = Journal()
    txid = stuck_abort(engine, journal)
    with pytest.raises(TransactionStateError, match=r"would contradict it.*heuristic=True"):
        engine.resolve(txid, Outcome.COMMIT, reason="x")
    with pytest.raises(InvalidParticipantError, match=r"'nobody' is not pending.*warehouse"):
        engine.resolve(txid, Outcome.ABORT, member="nobody", reason="x")
    with pytest.raises(InvalidOptionError, match="say why"):
        engine.resolve(txid, Outcome.ABORT, reason="  ")
    with pytest.raises(InvalidOptionError, match="commit or abort"):
        engine.resolve(txid, "rollback", reason="x")  # type: ignore[arg-type]
    with pytest.raises(UnknownTransactionError):
        engine.resolve("nope", Outcome.ABORT, reason="x")
    live = engine.begin()
    with pytest.raises(TransactionStateError, match="still driven by its caller"):
        engine.resolve(live, Outcome.ABORT, reason="x")
    tx = engine.resolve(txid, Outcome.COMMIT, reason="it went through", heuristic=True)
    assert tx.ended and {m.state for m in tx.members[:2]} == {MemberState.RESOLVED}
    with pytest.raises(TransactionFinishedError, match="is already aborted"):
        engine.resolve(txid, Outcome.ABORT, reason="again")


def test_an_undecided_transaction_can_be_decided_abort_only(log: LmdbLog) -> None:
    journal = Journal()
    registry = ParticipantRegistry()
    registry.register("rec", lambda name: RecordingParticipant(name, journal))
    members = (MemberSpec("a", "rec", {"name": "a"}), MemberSpec("b", "rec", {"name": "b"}))
    log.append([Opened("u", 1.0, Mode.TWO_PHASE, members, None)])
    with Engine(log, registry, EngineOptions(policy=FAST_RETRIES)) as engine:
        with pytest.raises(TransactionStateError, match="a, b never voted yes in the log"):
            engine.resolve("u", Outcome.COMMIT, reason="x")
        with pytest.raises(TransactionStateError, match="has no decision yet"):
            engine.resolve("u", Outcome.ABORT, member="a", reason="x")
        tx = engine.resolve("u", Outcome.ABORT, reason="their coordinator is gone", actor="ops")
        assert tx.state is TxState.DECIDED_ABORT and (tx.actor, tx.reason) == (
            "ops",
            "their coordinator is gone",
        )
        assert journal.calls == []  # decided, not delivered: recovery does that
        stored = log.read("u")  # durable at once
        assert stored is not None and isinstance(stored.records[-1], Decided)
        report = engine.recover()
    assert report.transactions[0].action == "re-send rollback"
    assert sorted(journal.of("u")) == [("a", "rollback"), ("b", "rollback")]


def test_a_decided_transaction_found_in_the_log_is_resolved(log: LmdbLog) -> None:
    members = (MemberSpec("a", None, None), MemberSpec("b", None, None))
    log.append([Opened("d", 1.0, Mode.TWO_PHASE, members, None)])
    log.append([Decided("d", 2.0, Outcome.COMMIT, ((0, Vote.YES), (1, Vote.YES)))])
    with Engine(log) as engine:
        tx = engine.resolve("d", Outcome.COMMIT, member="b", reason="committed by hand")
        assert [m.state for m in tx.members] == [MemberState.PREPARED, MemberState.RESOLVED]
        tx = engine.resolve("d", Outcome.COMMIT, reason="a too")
    assert tx.ended
    log.flush()
    assert isinstance(log.read("d").records[-1], Ended)  # type: ignore[union-attr]
