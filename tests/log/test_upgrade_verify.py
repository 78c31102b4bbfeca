"""`dtc verify` on a format-2 log runs the protocol's own transition check
(dtc_wal.maintenance.verify, issue 12 item 2): a record out of order (the log itself accepts it,
it knows no protocol rules) and a damaged record are each reported with their transaction
and place; a clean log verifies ok."""

from __future__ import annotations

import time
from pathlib import Path

import lmdb
import pytest

from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY
from dtc_wal.maintenance.verify import log_format, verify_log
from dtc_wal.protocol.records import (
    Acked,
    Decided,
    Ended,
    MemberSpec,
    MemberState,
    Mode,
    Opened,
    Outcome,
    Vote,
)

MEMBERS = (MemberSpec("a", "ledger", {"account": "a"}), MemberSpec("b"))


def committed(txid: str) -> list[object]:
    now = time.time()
    return [
        Opened(txid, now, Mode.TWO_PHASE, MEMBERS, {"k": 1}),
        Decided(txid, now, Outcome.COMMIT, ((0, Vote.YES), (1, Vote.YES))),
        Ended(txid, now, ((0, MemberState.COMMITTED), (1, MemberState.COMMITTED))),
    ]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log2"
    with LmdbLog(path) as new:
        new.append(committed("tx-1"))  # type: ignore[arg-type]
        new.append([Opened("tx-2", time.time(), Mode.TWO_PHASE, MEMBERS)])
    return path


def test_a_clean_log_verifies(log: Path) -> None:
    report = verify_log(log)
    assert report.ok, report.problems
    assert (report.transactions, report.records, report.unfinished) == (2, 4, 1)
    assert report.summary().startswith("ok: checked 4 record(s), 2 transaction(s)")
    assert log_format(log) == 2


def test_a_record_out_of_order_is_reported_with_its_transaction_and_place(log: Path) -> None:
    # The log stores it (framing only); the protocol refuses an ack before the decision.
    with LmdbLog(log) as new:
        new.append([Acked("tx-2", time.time(), ((0, MemberState.COMMITTED),))])
    report = verify_log(log)
    assert [(p.check, p.txid, p.record) for p in report.problems] == [("transition", "tx-2", 1)]
    assert "Acked" in report.problems[0].message
    assert "acknowledgements follow the decision" in report.problems[0].message


def test_a_damaged_record_is_reported_for_its_transaction_alone(log: Path) -> None:
    env = lmdb.open(str(log), max_dbs=8, subdir=True)
    try:
        records = env.open_db(b"records", create=False)
        with env.begin(write=True) as txn:
            key = RECORD_KEY.pack(1, 1)  # tx-1's decision
            value = bytes(txn.get(key, db=records))
            txn.put(key, value[:-1] + bytes([value[-1] ^ 0xFF]), db=records)
    finally:
        env.close()
    report = verify_log(log)
    assert [(p.check, p.txid, p.record) for p in report.problems] == [("record", "tx-1", 1)]
    assert "checksum" in report.problems[0].message


def test_an_ended_transaction_still_listed_unfinished_is_reported(log: Path) -> None:
    env = lmdb.open(str(log), max_dbs=8, subdir=True)
    try:
        unfinished = env.open_db(b"unfinished", create=False)
        with env.begin(write=True) as txn:
            txn.put((1).to_bytes(8, "big"), b"tx-1", db=unfinished)
    finally:
        env.close()
    report = verify_log(log)
    assert [(p.check, p.txid) for p in report.problems] == [("unfinished", "tx-1")]
