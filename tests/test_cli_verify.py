"""``verify_log`` (one test per damage mode, damaged through LMDB directly) and ``dtc verify``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_registry import append_records, populate, raw_tables
from click.testing import CliRunner
from dtc_wal.records import LogRecord, encode_record, frame, key_lsn, lsn_key, pack, unframe, unpack
from dtc_wal.wal.store import LogStore
from dtc_wal.wal.verify import Problem, verify_log

from dtc_wal.cli import cli
from dtc_wal.errors import LogError
from dtc_wal.states import Outcome, RecordType

pytestmark = pytest.mark.format1  # the format-1 log's own checks


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def ids(log: Path, tmp_path: Path) -> dict[str, str]:
    return populate(log, tmp_path / "journal")


def lsns_of(log: Path, txid: str) -> list[int]:
    store = LogStore(log, readonly=True)
    try:
        summary = store.summary(txid)
        assert summary is not None
        return list(summary["l"])
    finally:
        store.close()


def damage_record(log: Path, lsn: int, change: object) -> None:
    with raw_tables(log) as (txn, dbs):
        value = bytearray(txn.get(lsn_key(lsn), db=dbs["records"]))
        assert callable(change)
        txn.put(lsn_key(lsn), bytes(change(value)), db=dbs["records"])


def rewrite_summary(log: Path, txid: str, **fields: object) -> None:
    with raw_tables(log) as (txn, dbs):
        summary = unpack(unframe(bytes(txn.get(txid.encode(), db=dbs["txns"]))))
        summary.update(fields)
        txn.put(txid.encode(), frame(pack(summary)), db=dbs["txns"])


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- clean logs ------------------------------------------------------------------------------


def test_a_clean_log_has_no_problems(log: Path, ids: dict[str, str]) -> None:
    report = verify_log(log)
    assert report.ok, [str(p) for p in report.problems]
    assert report.transactions == 4
    assert report.unfinished == 1  # the in-doubt one
    assert report.records == report.last_lsn > 10
    assert report.summary().startswith("ok: checked")


def test_progress_is_reported_up_to_the_total(log: Path, ids: dict[str, str]) -> None:
    calls: list[tuple[int, int]] = []
    report = verify_log(log, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (report.records, report.records)


def test_a_missing_log_is_an_error_not_a_report(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no log at"):
        verify_log(tmp_path / "nothing")


def test_an_unfinished_undecided_transaction_is_not_a_problem(log: Path, tmp_path: Path) -> None:
    append_records(log, "tx-undecided", tmp_path / "j", decide=False)
    assert verify_log(log).ok


# -- one test per damage mode ---------------------------------------------------------------


def test_checksum_mismatch_names_the_lsn_and_its_transaction(
    log: Path, ids: dict[str, str]
) -> None:
    lsn = lsns_of(log, ids["committed"])[2]

    def flip(value: bytearray) -> bytearray:
        value[-1] ^= 0xFF
        return value

    damage_record(log, lsn, flip)
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.lsn, problem.txid) == ("record", lsn, ids["committed"])
    assert "checksum" in problem.message
    # the consequences (a transaction missing a record) are not reported as more problems


def test_unknown_version_byte(log: Path, ids: dict[str, str]) -> None:
    lsn = lsns_of(log, ids["aborted"])[0]

    def bump(value: bytearray) -> bytearray:
        value[0] = 7
        return value

    damage_record(log, lsn, bump)
    problem = only(verify_log(log).problems)
    assert (problem.lsn, problem.txid) == (lsn, ids["aborted"])
    assert "format version 7" in problem.message


def test_truncated_record(log: Path, ids: dict[str, str]) -> None:
    lsn = lsns_of(log, ids["saga"])[-1]
    damage_record(log, lsn, lambda value: value[:5])
    problem = only(verify_log(log).problems)
    assert problem.lsn == lsn
    assert "truncated" in problem.message


def test_bad_length(log: Path, ids: dict[str, str]) -> None:
    lsn = lsns_of(log, ids["saga"])[1]
    damage_record(log, lsn, lambda value: value + b"\x00")
    assert "bad length" in only(verify_log(log).problems).message


def test_a_damaged_record_no_index_names(log: Path, ids: dict[str, str]) -> None:
    with raw_tables(log) as (txn, dbs):
        txn.put(lsn_key(999), b"\x01garbage", db=dbs["records"])
        txn.put(b"last-lsn", lsn_key(999), db=dbs["meta"])
    problem = only(verify_log(log).problems)
    assert problem.lsn == 999 and problem.txid is None
    assert "no transaction in the txns index names this LSN" in problem.message


def test_a_refused_transition_names_the_record(log: Path, ids: dict[str, str]) -> None:
    txid = ids["committed"]
    lsns = lsns_of(log, txid)

    # An acknowledgement that contradicts the commit decision, with a valid checksum.
    forged = LogRecord(
        RecordType.ACKNOWLEDGED, txid, time.time(), "payment", outcome=Outcome.ROLLBACK
    )
    target = lsns[-3]  # the first acknowledgement
    with raw_tables(log) as (txn, dbs):
        assert txn.put(lsn_key(target), encode_record(forged), db=dbs["records"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.lsn, problem.txid) == ("transition", target, txid)
    assert "contradicts the decision" in problem.message


def test_index_state_differs_from_the_records(log: Path, ids: dict[str, str]) -> None:
    rewrite_summary(log, ids["committed"], s="aborted")
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.txid) == ("index", ids["committed"])
    assert "'aborted'" in problem.message and "'committed'" in problem.message


def test_index_lists_an_lsn_that_is_not_there(log: Path, ids: dict[str, str]) -> None:
    txid = ids["aborted"]
    lsns = lsns_of(log, txid)
    with raw_tables(log) as (txn, dbs):
        assert txn.delete(lsn_key(lsns[-1]), db=dbs["records"])
    problems = verify_log(log).problems
    assert any(
        p.check == "index" and p.lsn == lsns[-1] and "missing records" in p.message
        for p in problems
    )
    assert all(p.txid == txid for p in problems)


def test_records_without_an_index_entry(log: Path, ids: dict[str, str]) -> None:
    txid = ids["saga"]
    first = lsns_of(log, txid)[0]
    with raw_tables(log) as (txn, dbs):
        txn.delete(txid.encode(), db=dbs["txns"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.lsn, problem.txid) == ("index", first, txid)
    assert "no entry in the txns index" in problem.message


def test_an_index_entry_without_records(log: Path, ids: dict[str, str]) -> None:
    txid = ids["saga"]
    with raw_tables(log) as (txn, dbs):
        for lsn in lsns_of_raw(txn, dbs, txid):
            txn.delete(lsn_key(lsn), db=dbs["records"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.txid) == ("index", txid)
    assert "holds no record of it" in problem.message


def lsns_of_raw(txn: object, dbs: dict[str, object], txid: str) -> list[int]:
    raw = txn.get(txid.encode(), db=dbs["txns"])  # type: ignore[attr-defined]
    return list(unpack(unframe(bytes(raw)))["l"])


def test_an_unfinished_transaction_missing_from_the_unfinished_index(
    log: Path, ids: dict[str, str]
) -> None:
    with raw_tables(log) as (txn, dbs):
        assert txn.delete(ids["in_doubt"].encode(), db=dbs["unfinished"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.txid) == ("unfinished", ids["in_doubt"])
    assert "start-up would never recover it" in problem.message


def test_a_finished_transaction_listed_as_unfinished(log: Path, ids: dict[str, str]) -> None:
    with raw_tables(log) as (txn, dbs):
        txn.put(ids["committed"].encode(), b"", db=dbs["unfinished"])
        txn.put(b"ghost", b"", db=dbs["unfinished"])
    problems = verify_log(log).problems
    assert {(p.check, p.txid) for p in problems} == {
        ("unfinished", ids["committed"]),
        ("unfinished", "ghost"),
    }


def test_meta_last_lsn_below_the_highest_record(log: Path, ids: dict[str, str]) -> None:
    with raw_tables(log) as (txn, dbs):
        txn.put(b"last-lsn", lsn_key(3), db=dbs["meta"])
        cursor = txn.cursor(db=dbs["records"])
        assert cursor.last()
        highest = key_lsn(bytes(cursor.key()))
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.lsn) == ("meta", highest)
    assert "below the highest record" in problem.message


def test_a_key_that_is_not_an_lsn(log: Path, ids: dict[str, str]) -> None:
    with raw_tables(log) as (txn, dbs):
        # a short key sorts first (LogStore's open reads only the last key)
        txn.put(b"\x00\x00", b"", db=dbs["records"])
    problem = only(verify_log(log).problems)
    assert problem.check == "order"
    assert problem.message == "record key 0000 is not an 8-byte LSN"


# -- the command -----------------------------------------------------------------------------


def test_dtc_verify_clean_log_exits_zero(log: Path, ids: dict[str, str]) -> None:
    code, out, _ = run("verify", str(log))
    assert code == 0
    assert out.startswith("ok: checked")


def test_dtc_verify_corrupted_record_exits_4_naming_the_lsn(log: Path, ids: dict[str, str]) -> None:
    lsn = lsns_of(log, ids["in_doubt"])[1]

    def flip(value: bytearray) -> bytearray:
        value[12] ^= 0x01
        return value

    damage_record(log, lsn, flip)
    code, out, err = run("verify", str(log))
    assert code == 4
    assert (
        f"record: LSN {lsn}, transaction {ids['in_doubt']}: record at LSN {lsn} fails its checksum"
        in out
    )
    assert err.startswith(f"Error: {log}: 1 problem(s) in ")
    assert "Traceback" not in out + err


def test_dtc_verify_json(log: Path, ids: dict[str, str]) -> None:
    rewrite_summary(log, ids["saga"], s="active")
    code, out, _ = run("verify", str(log), "--json")
    assert code == 4
    report = json.loads(out)
    assert report["ok"] is False
    assert [(p["check"], p["txid"]) for p in report["problems"]] == [("index", ids["saga"])]


def test_dtc_verify_missing_log(tmp_path: Path) -> None:
    code, _, err = run("verify", str(tmp_path / "absent"))
    assert code == 1
    assert (
        err.strip()
        == f"Error: no log at {tmp_path / 'absent'}: give the directory a coordinator was opened on"
    )
