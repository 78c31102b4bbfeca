"""Durable test participants (SQLite) and the checker that reads them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import lmdb
import pytest

from dtc_wal import ParticipantRegistry, TransactionCoordinator, VoteNo
from dtc_wal.log.lmdb import log_format as dtc_log_format
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN
from dtc_wal.participant import PreparedResource
from dtc_wal.testing.checks import check_invariants, read_acks
from dtc_wal.testing.durable import (
    APPLIED,
    COMMITTED,
    COMMITTED_ONE_PHASE,
    COMPENSATED,
    LISTING_FACTORY,
    NULL_COMPENSATION,
    NULL_ROLLBACK,
    ONE_PHASE_FACTORY,
    PREPARED,
    REFUSED,
    RESOURCE_NAME,
    ROLLED_BACK,
    ROLLED_BACK_PREPARED,
    DurableParticipant,
    DurablePreparedResource,
    DurableStep,
    ListingDurableParticipant,
    OnePhaseDurableParticipant,
    read_states,
    register_durable,
    set_unreachable,
)
from dtc_wal.testing.harness import Case
from dtc_wal.testing.workload import coordinator_options, make_registry, run_transaction


def test_two_phase_states_and_idempotence(tmp_path: Path) -> None:
    p = DurableParticipant(tmp_path, "p")
    p.prepare("t1", {})
    p.prepare("t1", {})  # yes again
    p.commit("t1")
    p.commit("t1")  # duplicate
    p.prepare("t2", {})
    p.rollback("t2")
    p.rollback("t2")
    p.rollback("t3")  # never prepared: a null rollback
    with pytest.raises(VoteNo):
        p.prepare("t3", {})  # prepare after rollback
    held = read_states(tmp_path)
    assert held.states == {
        "t1": {"p": COMMITTED},
        "t2": {"p": ROLLED_BACK},
        "t3": {"p": NULL_ROLLBACK},
    }
    assert held.anomalies == []


def test_forbidden_calls_are_recorded_as_anomalies(tmp_path: Path) -> None:
    p = DurableParticipant(tmp_path, "p")
    with pytest.raises(RuntimeError, match="protocol violation"):
        p.commit("never-prepared")
    p.prepare("t1", {})
    p.commit("t1")
    with pytest.raises(RuntimeError):
        p.rollback("t1")
    anomalies = read_states(tmp_path).anomalies
    assert [(a.txid, a.call, a.state) for a in anomalies] == [
        ("never-prepared", "commit", None),
        ("t1", "rollback", COMMITTED),
    ]


def test_vote_no_and_unreachable(tmp_path: Path) -> None:
    no = DurableParticipant(tmp_path, "no", vote_no=True)
    with pytest.raises(VoteNo):
        no.prepare("t1", {})
    no.rollback("t1")
    set_unreachable(tmp_path, "no")
    with pytest.raises(ConnectionError, match="unreachable"):
        no.rollback("t2")
    set_unreachable(tmp_path, "no", False)
    assert read_states(tmp_path).states == {"t1": {"no": REFUSED}}


def test_saga_step_states(tmp_path: Path) -> None:
    s = DurableStep(tmp_path, "s")
    s.action("t1", {})
    s.action("t1", {})
    s.compensate("t1")
    s.compensate("t1")
    s.compensate("t2")  # null compensation
    with pytest.raises(VoteNo):
        s.action("t2", {})
    with pytest.raises(RuntimeError):
        DurableStep(tmp_path, "f", fail=True).action("t3", {})
    s.action("t4", {})
    assert read_states(tmp_path).states == {
        "t1": {"s": COMPENSATED},
        "t2": {"s": NULL_COMPENSATION},
        "t4": {"s": APPLIED},
    }


def test_registry_rebuilds_them_from_name_and_params(tmp_path: Path) -> None:
    registry = register_durable(ParticipantRegistry(), tmp_path, steps=["s0"])
    p = registry.create("durable", {"name": "p0", "vote_no": True})
    assert isinstance(p, DurableParticipant) and p.vote_no and p.name == "p0"
    s = registry.create("s0", {"fail": True})
    assert isinstance(s, DurableStep) and s.fail and s.name == "s0"
    with pytest.raises(ValueError):
        DurableParticipant(tmp_path, "../escape")


# -- the checker catches what it should --------------------------------------------------------


def _committed_case(tmp_path: Path) -> tuple[Case, str]:
    case = Case.create(tmp_path)
    with TransactionCoordinator(
        case.log, registry=make_registry(case.state), **coordinator_options()
    ) as coord:
        outcome, txid = run_transaction(coord, "2pc-commit", 3)
    assert dtc_log_format(case.log) == 2
    assert outcome == "commit"
    case.acks.write_text(f"commit {txid}\n")
    return case, txid


def test_checker_passes_a_clean_run(tmp_path: Path) -> None:
    case, _ = _committed_case(tmp_path)
    result = case.check()
    assert result.ok, str(result)
    assert (result.transactions, result.committed, result.acknowledged) == (1, 1, 1)


def test_checker_reports_a_participant_that_disagrees(tmp_path: Path) -> None:
    case, txid = _committed_case(tmp_path)
    conn = sqlite3.connect(case.state / "p1.sqlite")
    conn.execute("UPDATE txn SET state = ? WHERE txid = ?", (ROLLED_BACK, txid))
    conn.commit()
    conn.close()
    result = case.check()
    assert result.violations == [f"{txid} is committed in the log but p1 holds {ROLLED_BACK}"]


def test_checker_reports_lost_acknowledgements_and_unknown_state(tmp_path: Path) -> None:
    case, _ = _committed_case(tmp_path)
    with case.acks.open("a") as acks:
        acks.write("commit lost-txid\nabort other\ncommit torn-li")  # the last line is torn
    DurableParticipant(case.state, "p0").prepare("stray", {})
    result = check_invariants(case.log, case.state, case.acks)
    assert sorted(result.violations) == sorted(
        [
            "lost-txid was reported committed to its caller, but it is missing from the log",
            "other was reported aborted to its caller, but it is missing from the log",
            f"p0 holds {PREPARED} for stray, which the log does not know",
        ]
    )
    assert "torn-li" not in read_acks(case.acks).committed


@pytest.mark.slow
def test_checker_reports_an_unrecovered_log(tmp_path: Path) -> None:
    case = Case.create(tmp_path)
    run = case.run("2pc-commit", crash_at="prepare.after-all")
    assert run.killed_by_sigkill
    result = case.check()
    assert len(result.violations) == 1
    assert "still active after recovery" in result.violations[0]


def test_checker_reports_a_damaged_log(tmp_path: Path) -> None:
    case, txid = _committed_case(tmp_path)
    env = lmdb.open(str(case.log), max_dbs=8)
    with env.begin(write=True) as txn:
        records, txns = env.open_db(b"records", txn=txn), env.open_db(b"txns", txn=txn)
        number = TN.unpack(bytes(txn.get(txid.encode(), db=txns)))[0]
        key = RECORD_KEY.pack(number, 1)  # the Decided record
        value = bytearray(txn.get(key, db=records))
        value[-1] ^= 0x01  # the checksum no longer matches
        txn.put(key, bytes(value), db=records)
    env.close()
    problems = case.check().violations
    assert problems[0].startswith(f"log integrity: transaction {txid}, record 1")  # then
    assert "checksum" in problems[0]  # what the damage hides: the log cannot show it
    assert f"{txid} was reported committed to its caller, but it is missing from the log" in (
        problems
    )


# -- one-phase and listing participants, the PreparedResource ------------------------------


def test_one_phase_participant(tmp_path: Path) -> None:
    p = OnePhaseDurableParticipant(tmp_path, "p")
    p.commit_one_phase("t1", {})
    p.commit_one_phase("t1", {})  # a repeat after a timeout does nothing
    p.rollback("t2")
    with pytest.raises(VoteNo):
        p.commit_one_phase("t2", {})  # refused after a rollback
    no = OnePhaseDurableParticipant(tmp_path, "no", vote_no=True)
    with pytest.raises(VoteNo):
        no.commit_one_phase("t3", {})
    no.rollback("t3")  # the rollback that follows a refusal: ignored
    with pytest.raises(RuntimeError, match="protocol violation"):
        p.rollback("t1")  # nothing undoes a one-phase commit
    with pytest.raises(RuntimeError, match="protocol violation"):
        p.commit("t1")  # the one-phase path sends no commit
    held = read_states(tmp_path)
    assert held.states == {
        "t1": {"p": COMMITTED_ONE_PHASE},
        "t2": {"p": NULL_ROLLBACK},
        "t3": {"no": REFUSED},
    }
    assert [(a.txid, a.call) for a in held.anomalies] == [("t1", "rollback"), ("t1", "commit")]


def test_a_lone_one_phase_participant_takes_the_one_phase_path(tmp_path: Path) -> None:
    case = Case.create(tmp_path)
    with TransactionCoordinator(
        case.log, registry=make_registry(case.state), **coordinator_options()
    ) as coord:
        outcome, txid = run_transaction(coord, "1pc", 3)
    assert outcome == "commit"
    assert read_states(case.state).states == {txid: {"p0": COMMITTED_ONE_PHASE}}
    assert case.check().ok


def test_prepared_resource_lists_and_settles(tmp_path: Path) -> None:
    l0 = ListingDurableParticipant(tmp_path, "l0")
    l1 = ListingDurableParticipant(tmp_path, "l1")
    assert l0.lists_prepared is True
    for p in (l0, l1):
        p.prepare("t1", {})
        p.prepare("t2", {})
    l0.prepare("t3", {})
    l0.commit("t3")
    resource = DurablePreparedResource(tmp_path, ["l0", "l1", "l2"])  # l2 has no file yet
    assert isinstance(resource, PreparedResource)
    assert resource.prepared_transactions() == ["t1", "t2"]
    resource.rollback_prepared("t1")
    resource.rollback_prepared("t1")  # idempotent
    resource.commit_prepared("t2")
    resource.commit_prepared("t2")
    resource.rollback_prepared("t3")  # committed: not prepared, left alone
    resource.commit_prepared("unknown")  # no row anywhere: nothing written
    assert resource.prepared_transactions() == []
    with pytest.raises(VoteNo):
        l0.prepare("t1", {})  # a late prepare after the orphan's rollback
    l1.rollback("t1")  # a duplicate rollback from the coordinator: ignored
    held = read_states(tmp_path)
    assert held.states == {
        "t1": {"l0": ROLLED_BACK_PREPARED, "l1": ROLLED_BACK_PREPARED},
        "t2": {"l0": COMMITTED, "l1": COMMITTED},
        "t3": {"l0": COMMITTED},
    }
    assert held.anomalies == []


def test_registry_has_the_listing_factory_and_its_resource(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    p = registry.create(LISTING_FACTORY, {"name": "l0"})
    assert isinstance(p, ListingDurableParticipant)
    with pytest.raises(ValueError, match="not covered"):
        registry.create(LISTING_FACTORY, {"name": "p0"})
    assert isinstance(registry.resources()[RESOURCE_NAME](), DurablePreparedResource)
    assert isinstance(
        registry.create(ONE_PHASE_FACTORY, {"name": "p0"}), OnePhaseDurableParticipant
    )


def test_checker_accepts_orphans_and_lost_one_phase_histories(tmp_path: Path) -> None:
    case, _ = _committed_case(tmp_path)
    # an orphan: prepared at l0 and l1, rolled back by the resource; l2 saw a null rollback
    for name in ("l0", "l1"):
        ListingDurableParticipant(case.state, name).prepare("orphan", {})
    DurablePreparedResource(case.state, ["l0", "l1"]).rollback_prepared("orphan")
    ListingDurableParticipant(case.state, "l2").rollback("orphan")
    # a one-phase commit acknowledged to its caller, whose lazy history the log lost
    OnePhaseDurableParticipant(case.state, "o").commit_one_phase("one-phase", {})
    with case.acks.open("a") as acks:
        acks.write("commit one-phase\n")
    result = case.check()
    assert result.ok, str(result)
    assert (result.transactions, result.committed, result.aborted) == (3, 2, 1)


def test_checker_rejects_what_an_orphan_may_not_leave(tmp_path: Path) -> None:
    case, _ = _committed_case(tmp_path)
    ListingDurableParticipant(case.state, "l0").prepare("left", {})  # nobody resolved it
    for name in ("l0", "l1"):
        ListingDurableParticipant(case.state, name).prepare("mixed", {})
    DurablePreparedResource(case.state, ["l0"]).rollback_prepared("mixed")
    ListingDurableParticipant(case.state, "l1").rollback("mixed")  # not the resource's
    ListingDurableParticipant(case.state, "l0").prepare("told", {})
    DurablePreparedResource(case.state, ["l0"]).rollback_prepared("told")
    with case.acks.open("a") as acks:
        acks.write("decided told\ndecided lost\n")
    OnePhaseDurableParticipant(case.state, "o").commit_one_phase("two", {})
    DurableParticipant(case.state, "p9").rollback("two")
    assert sorted(case.check().violations) == sorted(
        [
            f"l0 holds {PREPARED} for left, which the log does not know",
            f"l1 holds {ROLLED_BACK} for mixed, which the log does not know",
            "told was reported committed to its caller, but it is aborted",
            "lost was reported committed to its caller, but it is missing from the log",
            "two, which the log does not know, was committed in one phase with other "
            f"participants holding state (o={COMMITTED_ONE_PHASE}, p9={NULL_ROLLBACK})",
        ]
    )
