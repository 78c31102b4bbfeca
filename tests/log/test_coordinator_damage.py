"""Damage stays local, on format 2, through the coordinator (docs/recovery.md, "A damaged
record"; docs/log-format-2.md, "Reading, and the rule for a damaged record"): a record or
index entry of an unfinished transaction that cannot be read back, or records that do not
fold, put that transaction alone in doubt; the coordinator opens and recovers every other
one, never drives, resolves or rewrites the damaged one, and says so on every open.

Each log holds three unfinished 2PC transactions of two registry-built participants,
written through ``LmdbLog`` as a coordinator that died would leave them: one decided
commit whose ``stock`` still has to acknowledge, one undecided, and one decided commit
with ``payment`` acknowledged that is then damaged through LMDB directly, one way per test.
The reader's checks one by one are test_log_lmdb.py's; this is what the coordinator makes
of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import pytest
from click.testing import CliRunner, Result
from helpers import Journal, RecordingParticipant, wait_until

from dtc_wal import ParticipantRegistry, TransactionCoordinator, TxState
from dtc_wal.cli import cli
from dtc_wal.errors import (
    LogCorruptError,
    LogError,
    TransactionDamagedError,
    UnsupportedFormatError,
)
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN, encode, frame
from dtc_wal.protocol.records import (
    Acked,
    Decided,
    Ended,
    MemberSpec,
    MemberState,
    Mode,
    Opened,
    Outcome,
    Record,
    Vote,
)
from dtc_wal.recovery import InDoubt

DECIDED, UNDECIDED, DAMAGED = "tx-decided", "tx-undecided", "tx-damaged"
DAMAGED_TN = 3  # transaction numbers follow the order of the first appends
MEMBERS = (
    MemberSpec("payment", "rec", {"name": "payment"}),
    MemberSpec("stock", "rec", {"name": "stock"}),
)
YES = ((0, Vote.YES), (1, Vote.YES))


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def registry(journal: Journal) -> ParticipantRegistry:
    registry = ParticipantRegistry()
    registry.register("rec", lambda name: RecordingParticipant(name, journal))
    return registry


@pytest.fixture
def open_coordinator(
    log: Path, registry: ParticipantRegistry
) -> Iterator[Callable[..., TransactionCoordinator]]:
    opened: list[TransactionCoordinator] = []

    def make(**options: Any) -> TransactionCoordinator:
        options.setdefault("recovery_interval", None)
        options.setdefault("registry", registry)
        coord = TransactionCoordinator(log, max_retries=1, backoff_initial=0.001, **options)
        opened.append(coord)
        return coord

    yield make
    for coord in reversed(opened):
        coord.close()


def build(log: Path) -> None:
    with LmdbLog(log) as written:
        written.append([Opened(DECIDED, 1.0, Mode.TWO_PHASE, MEMBERS)])
        written.append([Decided(DECIDED, 2.0, Outcome.COMMIT, YES)])
        written.append([Acked(DECIDED, 3.0, ((0, MemberState.COMMITTED),))])
        written.append([Opened(UNDECIDED, 4.0, Mode.TWO_PHASE, MEMBERS)])
        written.append([Opened(DAMAGED, 5.0, Mode.TWO_PHASE, MEMBERS)])
        written.append([Decided(DAMAGED, 6.0, Outcome.COMMIT, YES)])
        written.append([Acked(DAMAGED, 7.0, ((0, MemberState.COMMITTED),))])


def key(seq: int, tn: int = DAMAGED_TN) -> bytes:
    return RECORD_KEY.pack(tn, seq)


def edit(log: Path, table: str, change: Callable[[lmdb.Transaction, Any], object]) -> None:
    env = lmdb.open(str(log), max_dbs=8)
    try:
        db = env.open_db(table.encode())
        with env.begin(write=True) as txn:
            change(txn, db)
    finally:
        env.close()


def in_record(seq: int, change: Callable[[bytes], bytes | None]) -> Callable[[Path], None]:
    def damage(log: Path) -> None:
        def apply(txn: lmdb.Transaction, db: Any) -> None:
            new = change(bytes(txn.get(key(seq), db=db)))
            if new is None:
                txn.delete(key(seq), db=db)
            else:
                txn.put(key(seq), new, db=db)

        edit(log, "records", apply)

    return damage


def framed(seq: int, record_or_payload: Record | bytes) -> bytes:
    """A stored value with a valid checksum under record ``seq`` of the damaged one."""
    if isinstance(record_or_payload, bytes):
        payload = record_or_payload
    else:
        [(_, _, _, _, payload)] = encode([record_or_payload])
    return frame(key(seq), payload)


def in_index(
    table: str, change: Callable[[lmdb.Transaction, Any], object]
) -> Callable[[Path], None]:
    return lambda log: edit(log, table, change)


def flip_last(value: bytes) -> bytes:
    return value[:-1] + bytes([value[-1] ^ 0xFF])


FORGED_ACK = Acked(DAMAGED, 6.5, ((1, MemberState.COMMITTED),))
MODES: dict[str, tuple[Callable[[Path], None], str]] = {
    # name: (damage, what the in-doubt entry's error says)
    "checksum": (in_record(1, flip_last), "record 1 of transaction tx-damaged fails its checksum"),
    "bad length": (
        in_record(1, lambda v: v + b"\0"),
        "record 1 of transaction tx-damaged has a bad length",
    ),
    "truncated": (in_record(1, lambda v: v[:5]), "record 1 of transaction tx-damaged is truncated"),
    "version": (
        in_record(2, lambda v: b"\3" + v[1:]),
        "record 2 of transaction tx-damaged has version 3",
    ),
    "payload": (
        in_record(1, lambda _: framed(1, msgpack.packb([99, 1.0]))),
        "record 1 of transaction tx-damaged passes its checksum but is not a valid record",
    ),
    "missing record": (
        in_record(1, lambda _: None),
        "record 1 of transaction tx-damaged is missing",
    ),
    "missing opening": (
        in_record(0, lambda _: None),
        "record 0 of transaction tx-damaged is missing",
    ),
    "another transaction's record": (
        in_record(
            1,
            lambda _: frame(key(1, 1), encode([Decided(DECIDED, 2.0, Outcome.COMMIT, YES)])[0][4]),
        ),
        "record 1 of transaction tx-damaged fails its checksum",
    ),
    "transition": (in_record(1, lambda _: framed(1, FORGED_ACK)), "its records do not fold"),
    "index entry": (
        in_index("txns", lambda txn, db: txn.put(DAMAGED.encode(), b"\0\3", db=db)),
        "its index entry is 2 bytes, not 8",
    ),
    "index without records": (
        in_index("txns", lambda txn, db: txn.put(DAMAGED.encode(), TN.pack(99), db=db)),
        "its index names no records",
    ),
}

IN_RECORDS = [m for m in MODES if not m.startswith("index")]


def the_damaged(in_doubt: list[InDoubt], says: str) -> InDoubt:
    """Exactly one entry in doubt: the damaged transaction, with where and why (format 2
    has no LSNs: the error names the record's place in its transaction)."""
    [entry] = in_doubt
    assert (entry.txid, entry.damaged, entry.lsn, entry.outcome) == (DAMAGED, True, None, None)
    assert (entry.participant, entry.state) == ("*", "damaged")
    assert says in (entry.error or ""), entry.error
    return entry


def tables(log: Path) -> dict[str, dict[bytes, bytes]]:
    env = lmdb.open(str(log), max_dbs=8, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {
                name: {
                    bytes(k): bytes(v)
                    for k, v in txn.cursor(db=env.open_db(name.encode(), txn=txn))
                }
                for name in ("records", "txns", "unfinished")
            }
    finally:
        env.close()


def damaged_rows(tables_now: dict[str, dict[bytes, bytes]]) -> dict[str, dict[bytes, bytes]]:
    """What the log holds of the damaged transaction: its records and index entries."""
    prefix = TN.pack(DAMAGED_TN)
    return {
        "records": {k: v for k, v in tables_now["records"].items() if k.startswith(prefix)},
        "txns": {k: v for k, v in tables_now["txns"].items() if k == DAMAGED.encode()},
        "unfinished": {k: v for k, v in tables_now["unfinished"].items() if k == prefix},
    }


AFTER_RECOVERY = [
    ("stock", "commit", DECIDED),
    ("payment", "rollback", UNDECIDED),
    ("stock", "rollback", UNDECIDED),
]


def calls(journal: Journal) -> list[tuple[str, str, str]]:
    return sorted(journal.calls, key=lambda c: (c[2] != DECIDED, c))  # a pass may overlap them


@pytest.mark.parametrize("mode", IN_RECORDS)
def test_damage_puts_only_its_own_transaction_in_doubt(
    log: Path,
    journal: Journal,
    open_coordinator: Callable[..., TransactionCoordinator],
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    build(log)
    damage, says = MODES[mode]
    damage(log)
    before = damaged_rows(tables(log))
    with caplog.at_level(logging.ERROR, logger="dtc_wal"):
        coord = open_coordinator()
        report = coord.last_recovery_report
        assert report.finished == [DECIDED, UNDECIDED]
        assert report.damaged == [DAMAGED]
        the_damaged(report.in_doubt, says)
        assert coord.state(DECIDED) is TxState.COMMITTED
        assert coord.state(UNDECIDED) is TxState.ABORTED
        the_damaged(coord.in_doubt(), says)
        the_damaged(coord.recover_now().in_doubt, says)  # every pass reports it
        assert (coord.stats().unfinished, coord.stats().in_doubt) == (1, 1)
        with pytest.raises(TransactionDamagedError) as info:
            coord.transaction(DAMAGED)
        assert info.value.txid == DAMAGED and says in str(info.value)
        with pytest.raises(TransactionDamagedError, match=re.escape(f"dtc repair {log} {DAMAGED}")):
            coord.resolve(DAMAGED, "abort", reason="settled by hand")
        coord.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    [logged] = [m for m in errors if DAMAGED in m]  # once per open, not per pass
    assert says in logged
    assert calls(journal) == AFTER_RECOVERY  # nobody was told anything about the damaged one

    # it is still in the log, byte for byte, and a reopen gives the same picture
    assert damaged_rows(tables(log)) == before
    coord = open_coordinator()
    assert coord.last_recovery_report.finished == []
    the_damaged(coord.in_doubt(), says)
    assert coord.state(DECIDED) is TxState.COMMITTED
    coord.close()
    assert calls(journal) == AFTER_RECOVERY
    assert damaged_rows(tables(log)) == before
    assert run("verify", log).exit_code == 4  # dtc verify still reports it


@pytest.mark.parametrize("mode", [m for m in MODES if m.startswith("index")])
def test_a_damaged_txid_index_does_not_hide_sound_records_from_recovery(
    log: Path,
    journal: Journal,
    open_coordinator: Callable[..., TransactionCoordinator],
    mode: str,
) -> None:
    """Format 2 differs from format 1 here: the ``txns`` entry (txid -> transaction number)
    is only the index for reads by txid. Start-up reaches unfinished transactions through
    the ``unfinished`` table, whose entry leads to records that read back sound, so
    recovery finishes the transaction by its own records; reads by txid then report the
    damaged index entry, and ``dtc verify`` names it until the log is repaired."""
    build(log)
    damage, says = MODES[mode]
    damage(log)
    coord = open_coordinator()
    report = coord.last_recovery_report
    assert report.finished == [DECIDED, UNDECIDED, DAMAGED] and report.damaged == []
    assert calls(journal) == sorted(
        [*AFTER_RECOVERY, ("stock", "commit", DAMAGED)], key=lambda c: (c[2] != DECIDED, c)
    )  # its commit decision delivered to the member still pending
    assert coord.in_doubt() == []
    with pytest.raises(TransactionDamagedError, match=re.escape(says)):
        coord.transaction(DAMAGED)
    coord.close()
    verified = run("verify", log)
    assert verified.exit_code == 4 and DAMAGED in verified.output


def test_an_unfinished_entry_that_is_not_utf8_is_in_doubt_alone(
    log: Path, journal: Journal, open_coordinator: Callable[..., TransactionCoordinator]
) -> None:
    build(log)
    edit(log, "unfinished", lambda txn, db: txn.put(TN.pack(DAMAGED_TN), b"\xfftx", db=db))
    coord = open_coordinator()
    [entry] = coord.in_doubt()
    assert (entry.txid, entry.damaged, entry.participant) == ("\\xfftx", True, "*")
    assert "not UTF-8" in (entry.error or "")
    assert coord.state(DECIDED) is TxState.COMMITTED  # every readable one recovered
    assert coord.state(UNDECIDED) is TxState.ABORTED
    assert coord.last_recovery_report.damaged == ["\\xfftx"]
    coord.close()
    assert calls(journal) == AFTER_RECOVERY
    status = run("status", log)
    assert "\\xfftx" in status.output


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
    log: Path,
    registry: ParticipantRegistry,
    open_coordinator: Callable[..., TransactionCoordinator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    build(log)
    damage, says = MODES["checksum"]
    damage(log)
    resource = Holding([DAMAGED, "tx-unknown"])
    registry.register_resource("bank", lambda: resource)
    with caplog.at_level(logging.ERROR, logger="dtc_wal"):
        coord = open_coordinator()
        in_doubt = coord.last_recovery_report.in_doubt
        again = coord.recover_now().in_doubt
        coord.close()
    assert resource.settled == [("rollback", "tx-unknown")]  # a true orphan: presumed abort
    for report in (in_doubt, again):
        branch = [d for d in report if d.participant == "bank"]
        assert [(d.txid, d.state, d.outcome) for d in branch] == [(DAMAGED, "prepared", None)]
        assert says in (branch[0].error or "")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and DAMAGED in r.message]
    assert len(errors) == 1  # at open; the passes report it in doubt without logging it again


def test_background_passes_keep_reporting_it_and_log_it_once(
    log: Path,
    open_coordinator: Callable[..., TransactionCoordinator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Format 2 reads the damaged transaction again on each pass (its records are one
    cursor range: no cache to keep in step); what stays is what the operator sees."""
    build(log)
    damage, says = MODES["checksum"]
    damage(log)
    with caplog.at_level(logging.WARNING, logger="dtc_wal"):
        coord = open_coordinator(recovery_interval=0.01, recovery_backoff_max=0.02)
        assert wait_until(lambda: coord.stats().recovery_passes >= 4)
        the_damaged(coord.in_doubt(), says)
        assert coord.stats().in_doubt == 1
        coord.close()
    assert any("1 damaged transaction(s)" in r.getMessage() for r in caplog.records)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and DAMAGED in r.message]
    assert len(errors) == 1


@pytest.mark.parametrize(
    ("value", "says", "error"),
    [
        (b"\0\0\2", "meta/format is 3 bytes, expected 8", LogCorruptError),
        (TN.pack(3), "has format 3", UnsupportedFormatError),
    ],
    ids=["not 8 bytes", "another version"],
)
def test_damaged_meta_stops_the_open_and_says_what_to_do(
    log: Path,
    open_coordinator: Callable[..., TransactionCoordinator],
    value: bytes,
    says: str,
    error: type[LogError],
) -> None:
    build(log)

    edit(log, "meta", lambda txn, db: txn.put(b"format", value, db=db))
    with pytest.raises(error, match=says) as info:
        open_coordinator()
    if error is LogCorruptError:
        assert "restore data.mdb from a good backup" in str(info.value)
    with pytest.raises(error, match=says):
        LmdbLog(log, readonly=True)  # readers refuse it alike


def test_resolve_on_the_command_line_points_at_repair(log: Path) -> None:
    build(log)
    MODES["checksum"][0](log)
    result = run("resolve", log, DAMAGED, "--abort", "--reason", "settled by hand")
    assert result.exit_code == 1
    assert f"`dtc repair {log} {DAMAGED}`" in result.output
    repaired = run("repair", log, DAMAGED, "--backup-to", log.parent / "evidence")
    assert repaired.exit_code == 0, repaired.output  # which works, and the log is clean after
    with LmdbLog(log, readonly=True) as read:
        assert read.read(DAMAGED) is None
        assert [t.txid for t in read.unfinished()] == [DECIDED, UNDECIDED]


def test_a_damaged_record_of_a_finished_transaction_does_not_matter_to_start_up(
    log: Path, journal: Journal, open_coordinator: Callable[..., TransactionCoordinator]
) -> None:
    """Start-up never reads finished transactions: it opens clean; reading that one by
    txid reports the damage, and ``dtc verify`` finds it."""
    with LmdbLog(log) as written:
        written.append([Opened("tx-done", 1.0, Mode.TWO_PHASE, MEMBERS)])
        written.append([Decided("tx-done", 2.0, Outcome.COMMIT, YES)])
        both = ((0, MemberState.COMMITTED), (1, MemberState.COMMITTED))
        written.append([Ended("tx-done", 3.0, both)])
    edit(
        log,
        "records",
        lambda txn, db: txn.put(key(1, 1), flip_last(txn.get(key(1, 1), db=db)), db=db),
    )
    coord = open_coordinator()
    assert coord.last_recovery_report.examined == 0
    assert coord.in_doubt() == [] and coord.stats().unfinished == 0
    with pytest.raises(TransactionDamagedError, match="record 1 of transaction tx-done"):
        coord.transaction("tx-done")
    coord.close()
    assert journal.calls == []
    verified = run("verify", log)
    assert verified.exit_code == 4 and "tx-done" in verified.output
