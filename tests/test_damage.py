"""Damage stays local (issue 11): a record or index entry of an unfinished transaction that
cannot be read back puts that transaction alone in doubt; the coordinator opens and
recovers every other one (docs/recovery.md, "A damaged record").

Each log holds three unfinished 2PC transactions of two ``file`` participants written as a
coordinator that died would leave them: one decided commit whose ``stock`` has still to
acknowledge, one undecided, and one decided commit that is then damaged through LMDB
directly, one way per test.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dtc_wal.wal.store
import dtc_wal.wal.unfinished
import pytest
from cli_registry import FileParticipant, append_records, journal_lines, raw_tables, registry
from click.testing import CliRunner, Result
from dtc_wal.records import LogRecord, encode_record, frame, lsn_key, pack, unframe, unpack
from dtc_wal.wal import WriteAheadLog
from helpers import wait_until

from dtc_wal import Outcome, ParticipantRegistry, RecordType, TransactionCoordinator, TxState
from dtc_wal.cli import cli
from dtc_wal.errors import LogCorruptError, TransactionDamagedError
from dtc_wal.recovery import InDoubt

pytestmark = (
    pytest.mark.format1
)  # damage made in format-1 records; format 2: tests/log, test_cli2_commands.py


DECIDED, UNDECIDED, DAMAGED = "tx-decided", "tx-undecided", "tx-damaged"
Damager = Callable[[Path], tuple[int | None, str]]


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def open_coordinator(log: Path, **options: Any) -> TransactionCoordinator:
    options.setdefault("recovery_interval", None)
    options.setdefault("registry", registry)
    return TransactionCoordinator(log, max_retries=1, backoff_initial=0.001, **options)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def build(log: Path, journal: Path) -> None:
    append_records(log, DECIDED, journal, decide=True)
    ack = LogRecord(
        RecordType.ACKNOWLEDGED, DECIDED, time.time(), participant="payment", outcome=Outcome.COMMIT
    )
    with WriteAheadLog(log) as wal:
        wal.append([ack])
    append_records(log, UNDECIDED, journal, decide=False)
    append_records(log, DAMAGED, journal, decide=True)


def lsns(log: Path) -> list[int]:
    """The damaged transaction's LSNs: begun, enlisted payment, enlisted stock, prepared
    payment, prepared stock, decided-commit."""
    with raw_tables(log) as (txn, dbs):
        listed: list[int] = unpack(unframe(bytes(txn.get(DAMAGED.encode(), db=dbs["txns"]))))["l"]
        return listed


def change_record(log: Path, index: int, change: Callable[[bytes], bytes | None]) -> int:
    """Replace (or delete, when ``change`` returns None) the damaged transaction's
    ``index``-th record; return its LSN."""
    lsn = lsns(log)[index]
    with raw_tables(log) as (txn, dbs):
        new = change(bytes(txn.get(lsn_key(lsn), db=dbs["records"])))
        if new is None:
            txn.delete(lsn_key(lsn), db=dbs["records"])
        else:
            txn.put(lsn_key(lsn), new, db=dbs["records"])
    return lsn


def change_summary(log: Path, change: Callable[[bytes], bytes | None]) -> None:
    with raw_tables(log) as (txn, dbs):
        new = change(bytes(txn.get(DAMAGED.encode(), db=dbs["txns"])))
        if new is None:
            txn.delete(DAMAGED.encode(), db=dbs["txns"])
        else:
            txn.put(DAMAGED.encode(), new, db=dbs["txns"])


def flip_last(value: bytes) -> bytes:
    return value[:-1] + bytes([value[-1] ^ 0xFF])


def finished_yet_listed(log: Path) -> tuple[int | None, str]:
    """Its records complete it, but the unfinished index still lists it."""
    with WriteAheadLog(log) as wal:
        done = [
            LogRecord(RecordType.ACKNOWLEDGED, DAMAGED, time.time(), participant=p, outcome=o)
            for p, o in (("payment", Outcome.COMMIT), ("stock", Outcome.COMMIT))
        ]
        wal.append([*done, LogRecord(RecordType.COMPLETED, DAMAGED, time.time())])
    with raw_tables(log) as (txn, dbs):
        txn.put(DAMAGED.encode(), b"", db=dbs["unfinished"])
    return None, "yet the unfinished index lists it"


def forged(kind: RecordType, txid: str = DAMAGED, **fields: Any) -> Callable[[bytes], bytes]:
    return lambda _: encode_record(LogRecord(kind, txid, time.time(), **fields))


def in_record(index: int, change: Callable[[bytes], bytes | None], reason: str) -> Damager:
    return lambda log: (change_record(log, index, change), reason)


def in_summary(change: Callable[[bytes], bytes | None], reason: str) -> Damager:
    def damager(log: Path) -> tuple[int | None, str]:
        change_summary(log, change)
        return None, reason

    return damager


BAD_PAYLOAD = frame(pack({"k": 99, "x": DAMAGED, "t": 0.0}))
NO_RECORDS = frame(pack({"s": "decided-commit", "l": []}))
ACK = forged(RecordType.ACKNOWLEDGED, participant="payment", outcome=Outcome.COMMIT)
OTHER = forged(RecordType.PREPARED, "tx-other", participant="stock")
MODES: dict[str, Damager] = {
    "checksum": in_record(2, flip_last, "fails its checksum"),
    "bad length": in_record(2, lambda v: v + b"\0", "bad length"),
    "truncated": in_record(2, lambda v: v[:5], "truncated"),
    "version": in_record(3, lambda v: b"\2" + v[1:], "format version 2"),
    "payload": in_record(1, lambda _: BAD_PAYLOAD, "not a valid record"),
    "missing record": in_record(4, lambda _: None, "missing from the log"),
    "transition": in_record(3, ACK, "breaks the transition table"),
    "another transaction's record": in_record(4, OTHER, "belongs to transaction tx-other"),
    "summary checksum": in_summary(flip_last, "summary of tx-damaged"),
    "summary missing": in_summary(lambda _: None, "holds no entry"),
    "summary without records": in_summary(lambda _: NO_RECORDS, "lists no valid record LSNs"),
    "finished yet listed": finished_yet_listed,
}


def the_damaged(in_doubt: list[InDoubt], lsn: int | None, reason: str) -> InDoubt:
    """Exactly one entry in doubt: the damaged transaction, with where and why."""
    [entry] = in_doubt
    assert (entry.txid, entry.damaged, entry.lsn, entry.outcome) == (DAMAGED, True, lsn, None)
    assert (entry.participant, entry.state) == ("*", "damaged")
    assert reason in (entry.error or "")
    return entry


def tables(log: Path) -> dict[str, dict[bytes, bytes]]:
    with raw_tables(log) as (txn, dbs):
        return {
            name: {bytes(k): bytes(v) for k, v in txn.cursor(db=db)} for name, db in dbs.items()
        }


def calls(journal: Path) -> dict[str, list[str]]:
    """What each participant was told, sorted: a pass may drive two transactions at once,
    so the order between transactions is not fixed."""
    return {name: sorted(journal_lines(journal, name)) for name in ("payment", "stock")}


AFTER_RECOVERY = {
    "payment": [f"rollback {UNDECIDED}"],
    "stock": [f"commit {DECIDED}", f"rollback {UNDECIDED}"],
}


@pytest.mark.parametrize("mode", list(MODES))
def test_damage_puts_only_its_own_transaction_in_doubt(
    log: Path, journal: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    build(log, journal)
    lsn, reason = MODES[mode](log)
    before = tables(log)
    with caplog.at_level(logging.ERROR, logger="dtc_wal"), open_coordinator(log) as coord:
        report = coord.last_recovery_report
        assert report.finished == [DECIDED, UNDECIDED]
        assert report.damaged == [DAMAGED]
        the_damaged(report.in_doubt, lsn, reason)
        assert coord.state(DECIDED) is TxState.COMMITTED
        assert coord.state(UNDECIDED) is TxState.ABORTED
        the_damaged(coord.in_doubt(), lsn, reason)
        the_damaged(coord.recover_now().in_doubt, lsn, reason)  # every pass reports it
        assert (coord.stats().unfinished, coord.stats().in_doubt) == (1, 1)
        with pytest.raises(TransactionDamagedError) as info:
            coord.transaction(DAMAGED)
        assert (info.value.txid, info.value.lsn) == (DAMAGED, lsn)
        with pytest.raises(TransactionDamagedError, match=re.escape(f"dtc repair {log} {DAMAGED}")):
            coord.resolve(DAMAGED, "abort", reason="settled by hand")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    [logged] = [m for m in errors if DAMAGED in m]  # once per open, not per pass
    assert (f"LSN {lsn}" if lsn else "its index entry") in logged and reason in logged
    assert calls(journal) == AFTER_RECOVERY  # nobody was told anything about the damaged one

    # it is still in the log, byte for byte, and a reopen gives the same picture
    assert still_there(log, before)
    with open_coordinator(log) as coord:
        assert coord.last_recovery_report.finished == []
        the_damaged(coord.in_doubt(), lsn, reason)
        assert coord.state(DECIDED) is TxState.COMMITTED
    assert calls(journal) == AFTER_RECOVERY
    assert run("verify", log).exit_code == 4  # dtc verify still reports it


def still_there(log: Path, before: dict[str, dict[bytes, bytes]]) -> bool:
    """Every record there was before the coordinator opened is still there, unchanged, and
    so are the damaged transaction's index entries."""
    now, key = tables(log), DAMAGED.encode()
    return (
        all(now["records"].get(k) == v for k, v in before["records"].items())
        and now["txns"].get(key) == before["txns"].get(key)
        and now["unfinished"].get(key) == before["unfinished"].get(key) == b""
    )


def test_an_unreadable_txid_is_reported_as_unknown(log: Path, journal: Path) -> None:
    build(log, journal)
    with raw_tables(log) as (txn, dbs):
        txn.put(b"\xfftx", b"", db=dbs["unfinished"])
    with open_coordinator(log) as coord:
        [entry] = [d for d in coord.in_doubt() if d.txid.startswith("<")]
        assert entry.txid == "<unreadable txid ff7478>" and entry.lsn is None
        assert "not UTF-8" in (entry.error or "") and "cannot be known" in (entry.error or "")
        assert coord.state(DAMAGED) is TxState.COMMITTED  # every readable one recovered
        assert coord.state(UNDECIDED) is TxState.ABORTED
    assert "<unreadable txid ff7478>" in run("status", log).stdout


class Holding:
    """A PreparedResource holding a prepared branch of every txid it is given."""

    def __init__(self, txids: list[str]) -> None:
        self.txids = txids
        self.settled: list[tuple[str, str]] = []

    def prepared_transactions(self) -> list[str]:
        return list(self.txids)

    def commit_prepared(self, txid: str) -> None:
        self.settled.append(("commit", txid))
        self.txids.remove(txid)

    def rollback_prepared(self, txid: str) -> None:
        self.settled.append(("rollback", txid))
        self.txids.remove(txid)


def test_orphan_resolution_leaves_a_damaged_transactions_branches_alone(
    log: Path, journal: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build(log, journal)
    lsn, _ = MODES["checksum"](log)
    resource = Holding([DAMAGED, "tx-unknown"])
    with_resource = ParticipantRegistry()
    with_resource.register("file", FileParticipant)
    with_resource.register_resource("bank", lambda: resource)
    with (
        caplog.at_level(logging.ERROR, logger="dtc_wal"),
        open_coordinator(log, registry=with_resource) as coord,
    ):
        in_doubt = coord.last_recovery_report.in_doubt
        again = coord.recover_now().in_doubt
    assert resource.settled == [("rollback", "tx-unknown")]  # a true orphan: presumed abort
    for report in (in_doubt, again):
        branch = [d for d in report if d.participant == "bank"]
        assert [(d.txid, d.state, d.outcome) for d in branch] == [(DAMAGED, "prepared", None)]
        assert f"LSN {lsn}" in (branch[0].error or "")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and DAMAGED in r.message]
    assert len(errors) == 1  # at open; the passes report it in doubt without logging it again


def test_background_passes_keep_reporting_it_without_reading_it_again(
    log: Path, journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    build(log, journal)
    lsn, reason = MODES["checksum"](log)
    with open_coordinator(log, recovery_interval=0.01, recovery_backoff_max=0.02) as coord:
        decoded: list[int | None] = []

        def spy(value: bytes, at: int | None = None) -> LogRecord:
            decoded.append(at)
            return real(value, at)

        real = dtc_wal.wal.unfinished.decode_record
        monkeypatch.setattr(dtc_wal.wal.unfinished, "decode_record", spy)
        monkeypatch.setattr(dtc_wal.wal.store, "decode_record", spy)
        with caplog.at_level(logging.WARNING, logger="dtc_wal.recovery"):
            assert wait_until(lambda: coord.stats().recovery_passes >= 4)
        the_damaged(coord.in_doubt(), lsn, reason)
        assert coord.stats().in_doubt == 1
    assert decoded == []  # the passes read nothing of it from the log
    assert any("1 damaged transaction(s)" in r.getMessage() for r in caplog.records)


def test_damaged_meta_stops_the_open_and_says_what_to_do(log: Path, journal: Path) -> None:
    build(log, journal)
    with raw_tables(log) as (txn, dbs):
        txn.put(b"last-lsn", b"\0\0\1", db=dbs["meta"])
    with pytest.raises(LogCorruptError, match="meta/last-lsn is 3 bytes") as info:
        open_coordinator(log)
    assert "restore data.mdb from a good backup" in str(info.value)
    verified = run("verify", log)  # readers still open it, and verify names the damage
    assert verified.exit_code == 4
    assert "meta/last-lsn is 3 bytes, expected 8" in verified.output


# -- the command line ------------------------------------------------------------------


@pytest.fixture
def damaged_log(log: Path, journal: Path) -> tuple[Path, int]:
    build(log, journal)
    lsn, _ = MODES["checksum"](log)
    return log, lsn


def test_status_reports_it_in_doubt_with_the_reason(damaged_log: tuple[Path, int]) -> None:
    log, lsn = damaged_log
    result = run("status", log)
    assert result.exit_code == 0, result.output
    assert "1 damaged transaction(s) left alone by recovery" in result.stdout
    assert f"{DAMAGED}: damaged in the log, left alone by recovery" in result.stdout
    assert f"record at LSN {lsn} fails its checksum" in result.stdout
    [entry] = [
        d for d in json.loads(run("status", log, "--json").stdout)["in_doubt"] if d["damaged"]
    ]
    assert (entry["txid"], entry["lsn"], entry["state"]) == (DAMAGED, lsn, "damaged")


def test_list_marks_it_damaged(damaged_log: tuple[Path, int]) -> None:
    log, lsn = damaged_log
    result = run("list", log)
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.stdout.splitlines() if line.startswith(f"{DAMAGED} ")]
    assert row.split()[1] == "damaged"
    assert f"{DAMAGED}: damaged, in doubt and left alone by recovery: record at LSN {lsn}" in (
        result.stdout
    )
    for state in ("unfinished", "damaged"):
        rows = json.loads(run("list", log, "--state", state, "--json").stdout)
        [entry] = [r for r in rows if r["txid"] == DAMAGED]
        assert entry["state"] == "damaged" and f"LSN {lsn}" in entry["damage"]
    assert run("list", log, "--state", "decided-commit").stdout.count(DAMAGED) == 0


def test_recover_leaves_it_in_doubt_and_finishes_the_rest(
    damaged_log: tuple[Path, int], journal: Path
) -> None:
    log, lsn = damaged_log
    dry = run("recover", log, "--registry", "cli_registry:registry", "--dry-run")
    assert f"{DAMAGED}  decided-commit: damaged at LSN {lsn}: left alone -> in doubt" in dry.stdout
    assert calls(journal) == {"payment": [], "stock": []}
    real = run("recover", log, "--registry", "cli_registry:registry")
    assert real.exit_code == 4
    assert "finished 2, 0 participant(s) in doubt, 1 damaged transaction(s)" in real.stdout
    assert "1 damaged transaction(s) left alone" in real.output
    assert calls(journal) == AFTER_RECOVERY


def test_resolve_points_at_repair(damaged_log: tuple[Path, int]) -> None:
    log, _ = damaged_log
    result = run("resolve", log, DAMAGED, "--abort", "--reason", "settled by hand")
    assert result.exit_code == 1
    assert f"`dtc repair {log} {DAMAGED}`" in result.output
    repaired = run("repair", log, DAMAGED)  # which works, and the log is clean afterwards
    assert repaired.exit_code == 0, repaired.output
    with open_coordinator(log) as coord:
        assert coord.in_doubt() == []
