"""``verify_log`` on format 2 (one test per damage mode, damaged through LMDB directly) and
``dtc verify``.

Format 1's checks, and where they went: a damaged record (checksum, version byte,
truncated, bad length, a key out of place) is found and named by its transaction and its
place in it (``seq``) instead of an LSN; a refused transition is flagged by the protocol's
own transition table; the ``unfinished`` index is checked against the folds. Format 2
keeps no per-transaction summary in the index (only the transaction number), so format 1's
"index state differs from the records" has nothing to check; its ``last-lsn`` check has no
counterpart either (the writer takes the highest transaction number stored, whatever
``meta/last-tn`` says).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_registry import append_unfinished, populate, raw_tables
from click.testing import CliRunner

from dtc_wal.cli import cli
from dtc_wal.errors import LogError
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN, encode, frame
from dtc_wal.maintenance.verify import Problem, verify_log
from dtc_wal.protocol.records import Ended, MemberState, Record


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def ids(log: Path, tmp_path: Path) -> dict[str, str]:
    return populate(log, tmp_path / "journal")


def tn_of(log: Path, txid: str) -> int:
    with raw_tables(log) as (txn, dbs):
        raw = txn.get(txid.encode(), db=dbs["txns"])
    assert raw is not None
    number: int = TN.unpack(bytes(raw))[0]
    return number


def change_record(log: Path, txid: str, seq: int, change: Callable[[bytes], bytes]) -> None:
    key = RECORD_KEY.pack(tn_of(log, txid), seq)
    with raw_tables(log) as (txn, dbs):
        value = txn.get(key, db=dbs["records"])
        assert value is not None
        txn.put(key, change(bytes(value)), db=dbs["records"])


def forge(log: Path, txid: str, seq: int, record: Record) -> None:
    """Store ``record`` at ``seq`` of ``txid``, framed like a real one (its checksum holds)."""
    key = RECORD_KEY.pack(tn_of(log, txid), seq)
    payload = encode([record])[0][4]
    with raw_tables(log) as (txn, dbs):
        txn.put(key, frame(key, payload), db=dbs["records"])


def flip_last(value: bytes) -> bytes:
    return value[:-1] + bytes([value[-1] ^ 0xFF])


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
    assert (report.format, report.transactions, report.unfinished) == (2, 4, 1)  # in doubt
    assert report.records == 3 + 3 + 4 + 4
    assert report.summary().startswith("ok: checked 14 record(s), 4 transaction(s)")


def test_progress_is_reported_up_to_the_total(log: Path, ids: dict[str, str]) -> None:
    calls: list[tuple[int, int]] = []
    report = verify_log(log, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(n, report.transactions) for n in range(1, 5)]


def test_a_missing_log_is_an_error_not_a_report(tmp_path: Path) -> None:
    with pytest.raises(LogError):
        verify_log(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_an_unfinished_undecided_transaction_is_not_a_problem(log: Path, tmp_path: Path) -> None:
    append_unfinished(log, "tx-undecided", tmp_path / "j", decide=False)
    report = verify_log(log)
    assert report.ok and report.unfinished == 1


# -- one test per damage mode: a damaged record is found and named ---------------------------


def test_checksum_mismatch_names_the_record_and_its_transaction(
    log: Path, ids: dict[str, str]
) -> None:
    change_record(log, ids["committed"], 2, flip_last)
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.record, problem.txid) == ("record", 2, ids["committed"])
    assert "fails its checksum" in problem.message
    # the consequences (a finished transaction reading as unfinished, not in the
    # unfinished index) are not reported as more problems


def test_unknown_version_byte(log: Path, ids: dict[str, str]) -> None:
    change_record(log, ids["aborted"], 0, lambda value: bytes([7]) + value[1:])
    problem = only(verify_log(log).problems)
    assert (problem.record, problem.txid) == (0, ids["aborted"])
    assert "has version 7" in problem.message


def test_truncated_record(log: Path, ids: dict[str, str]) -> None:
    change_record(log, ids["saga"], 3, lambda value: value[:5])
    problem = only(verify_log(log).problems)
    assert (problem.record, problem.txid) == (3, ids["saga"])
    assert "is truncated" in problem.message


def test_bad_length(log: Path, ids: dict[str, str]) -> None:
    change_record(log, ids["saga"], 1, lambda value: value + b"\x00")
    problem = only(verify_log(log).problems)
    assert (problem.record, problem.txid) == (1, ids["saga"])
    assert "has a bad length" in problem.message


def test_a_missing_record_is_a_gap_in_the_sequence(log: Path, ids: dict[str, str]) -> None:
    txid = ids["aborted"]
    with raw_tables(log) as (txn, dbs):
        assert txn.delete(RECORD_KEY.pack(tn_of_raw(txn, dbs, txid), 1), db=dbs["records"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.record, problem.txid) == ("record", 1, txid)
    assert "is missing (the next stored is record 2)" in problem.message


def test_a_key_that_is_not_a_record_key(log: Path, ids: dict[str, str]) -> None:
    txid = ids["saga"]
    with raw_tables(log) as (txn, dbs):  # 13 bytes, sorting between its records 1 and 2
        key = RECORD_KEY.pack(tn_of_raw(txn, dbs, txid), 1) + b"\x00"
        txn.put(key, b"", db=dbs["records"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.record, problem.txid) == ("record", 2, txid)
    assert "is missing (the next stored is a 13-byte key)" in problem.message


def tn_of_raw(txn: object, dbs: dict[str, object], txid: str) -> int:
    raw = txn.get(txid.encode(), db=dbs["txns"])  # type: ignore[attr-defined]
    number: int = TN.unpack(bytes(raw))[0]
    return number


# -- a bad transition is flagged -------------------------------------------------------------


def test_a_refused_transition_names_the_record(log: Path, ids: dict[str, str]) -> None:
    txid = ids["committed"]
    # An Ended whose acknowledgements contradict the commit decision, checksum valid.
    rolled = ((0, MemberState.ROLLED_BACK), (1, MemberState.ROLLED_BACK))
    forge(log, txid, 2, Ended(txid, time.time(), rolled))
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.record, problem.txid) == ("transition", 2, txid)
    assert problem.message.startswith("Ended: ")


# -- the indexes against the records ---------------------------------------------------------


def test_the_last_record_gone_leaves_a_transaction_unfinished_but_unlisted(
    log: Path, ids: dict[str, str]
) -> None:
    txid = ids["aborted"]
    with raw_tables(log) as (txn, dbs):  # its Ended
        assert txn.delete(RECORD_KEY.pack(tn_of_raw(txn, dbs, txid), 2), db=dbs["records"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.txid) == ("unfinished", txid)
    assert "has not ended but is missing from the unfinished index" in problem.message


def test_an_index_entry_without_records(log: Path, ids: dict[str, str]) -> None:
    txid = ids["saga"]
    with raw_tables(log) as (txn, dbs):
        tn = tn_of_raw(txn, dbs, txid)
        for seq in range(4):
            assert txn.delete(RECORD_KEY.pack(tn, seq), db=dbs["records"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.txid) == ("record", txid)
    assert "its index names no records" in problem.message


def test_records_without_an_index_entry(log: Path, ids: dict[str, str]) -> None:
    txid = ids["saga"]  # finished: not in the unfinished index either
    with raw_tables(log) as (txn, dbs):
        tn = tn_of_raw(txn, dbs, txid)
        assert txn.delete(txid.encode(), db=dbs["txns"])
    report = verify_log(log)
    problem = only(report.problems)
    assert (problem.check, problem.txid, problem.record) == ("record", txid, None)
    assert problem.message == (
        f"4 stored record(s) under key {RECORD_KEY.pack(tn, 0).hex()} belong to no "
        f"transaction of the txns index; its Opened names {txid}: recovery never reads them"
    )
    assert (report.transactions, report.records) == (3, 14)


def test_a_damaged_record_no_index_names(log: Path, ids: dict[str, str]) -> None:
    with raw_tables(log) as (txn, dbs):
        txn.put(RECORD_KEY.pack(999, 0), b"\x02garbage", db=dbs["records"])
        txn.put(b"\x00\x00", b"", db=dbs["records"])  # too short for a transaction number
    problems = verify_log(log).problems
    assert [(p.check, p.txid) for p in problems] == [("record", None), ("record", None)]
    assert problems[0].message.startswith("1 stored record(s) under key 0000 belong to no ")
    assert problems[1].message.startswith(
        f"1 stored record(s) under key {RECORD_KEY.pack(999, 0).hex()} belong to no "
    )


def test_an_unfinished_transaction_without_its_txns_entry(log: Path, ids: dict[str, str]) -> None:
    txid = ids["in_doubt"]
    with raw_tables(log) as (txn, dbs):
        assert txn.delete(txid.encode(), db=dbs["txns"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.txid) == ("unfinished", txid)
    assert "the unfinished index lists it, but nothing else does" in problem.message


def test_an_unfinished_transaction_missing_from_the_unfinished_index(
    log: Path, ids: dict[str, str]
) -> None:
    with raw_tables(log) as (txn, dbs):
        tn = tn_of_raw(txn, dbs, ids["in_doubt"])
        assert txn.delete(TN.pack(tn), db=dbs["unfinished"])
    problem = only(verify_log(log).problems)
    assert (problem.check, problem.txid) == ("unfinished", ids["in_doubt"])
    assert "start-up would never recover it" in problem.message


def test_a_finished_transaction_listed_as_unfinished(log: Path, ids: dict[str, str]) -> None:
    with raw_tables(log) as (txn, dbs):
        tn = tn_of_raw(txn, dbs, ids["committed"])
        txn.put(TN.pack(tn), ids["committed"].encode(), db=dbs["unfinished"])
        txn.put(TN.pack(999), b"ghost", db=dbs["unfinished"])  # a number nothing holds
    problems = verify_log(log).problems
    assert {(p.check, p.txid) for p in problems} == {
        ("unfinished", ids["committed"]),
        ("unfinished", "ghost"),
    }
    ended = next(p for p in problems if p.txid == ids["committed"])
    assert "has ended but is still in the unfinished index" in ended.message
    ghost = next(p for p in problems if p.txid == "ghost")
    assert "the unfinished index lists it, but nothing else does" in ghost.message


# -- the command -----------------------------------------------------------------------------


def test_dtc_verify_clean_log_exits_zero(log: Path, ids: dict[str, str]) -> None:
    code, out, _ = run("verify", str(log))
    assert code == 0
    assert out.startswith("ok: checked 14 record(s), 4 transaction(s) (1 unfinished), format 2")


def test_dtc_verify_corrupted_record_exits_4_naming_the_record(
    log: Path, ids: dict[str, str]
) -> None:
    txid = ids["in_doubt"]
    change_record(log, txid, 1, lambda v: v[:12] + bytes([v[12] ^ 0x01]) + v[13:])
    code, out, err = run("verify", str(log))
    assert code == 4
    assert f"record: transaction {txid}, record 1: record 1 of transaction {txid} fails" in out
    assert err.startswith(f"Error: {log}: 1 problem(s) in ")
    assert "Traceback" not in out + err


def test_dtc_verify_json(log: Path, ids: dict[str, str]) -> None:
    forge(log, ids["saga"], 3, Ended(ids["saga"], time.time(), ((0, MemberState.ROLLED_BACK),)))
    code, out, _ = run("verify", str(log), "--json")
    assert code == 4
    report = json.loads(out)
    assert report["ok"] is False and report["format"] == 2
    assert [(p["check"], p["txid"], p["record"]) for p in report["problems"]] == [
        ("transition", ids["saga"], 3)
    ]


def test_dtc_verify_missing_log(tmp_path: Path) -> None:
    code, _, err = run("verify", str(tmp_path / "absent"))
    assert code == 1
    assert (
        err.strip()
        == f"Error: no log at {tmp_path / 'absent'}: give the directory a coordinator was opened on"
    )
