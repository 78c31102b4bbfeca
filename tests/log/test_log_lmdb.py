"""The LMDB backend of log format 2: layout, format checks, locking, map growth, and one
test per damage mode (LevelDB ``db/log_test.cc`` style), each setting aside only its
transaction."""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import pytest
from fixtures.format1.writer import WriteAheadLog

from dtc_wal.errors import (
    InvalidOptionError,
    LogError,
    LogLockedError,
    RecordDamagedError,
    UnsupportedFormatError,
)
from dtc_wal.format1.records import LogRecord
from dtc_wal.format1.vocabulary import RecordType
from dtc_wal.log import Damage, StoredTransaction
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN, frame
from dtc_wal.protocol.records import Failed, Mode, Op, Opened

from .conftest import MakeLog, child, decided, ended, opened


def raw_tables(log_dir: Path) -> dict[str, dict[bytes, bytes]]:
    env = lmdb.open(str(log_dir), max_dbs=8, readonly=True)
    try:
        out = {}
        for name in ("records", "txns", "unfinished", "meta"):
            db = env.open_db(name.encode(), create=False)
            with env.begin() as txn:
                out[name] = {bytes(k): bytes(v) for k, v in txn.cursor(db=db)}
        return out
    finally:
        env.close()


def edit(log_dir: Path, table: str, change: Callable[[lmdb.Transaction, Any], object]) -> None:
    env = lmdb.open(str(log_dir), max_dbs=8)
    try:
        db = env.open_db(table.encode(), create=False)
        with env.begin(write=True) as txn:
            change(txn, db)
    finally:
        env.close()


# -- layout -----------------------------------------------------------------------------------


def test_layout_records_by_transaction_number_and_sequence(
    make_log: MakeLog, log_dir: Path
) -> None:
    log = make_log()
    log.append([opened("b-first", 1.0)])
    log.append([opened("a-second", 2.0), decided("b-first", 3.0)])
    log.append([ended("b-first", 4.0)])
    log.close()
    tables = raw_tables(log_dir)
    assert list(tables["records"]) == [
        RECORD_KEY.pack(1, 0),
        RECORD_KEY.pack(1, 1),
        RECORD_KEY.pack(1, 2),
        RECORD_KEY.pack(2, 0),
    ]
    assert all(len(k) == 12 for k in tables["records"])
    assert tables["txns"] == {b"a-second": TN.pack(2), b"b-first": TN.pack(1)}
    assert tables["unfinished"] == {TN.pack(2): b"a-second"}
    assert tables["meta"] == {b"format": struct.pack(">Q", 2)}


def test_transaction_numbers_are_never_reused_after_compaction(
    make_log: MakeLog, log_dir: Path
) -> None:
    log = make_log()
    log.append([opened("t1", 1.0), ended("t1", 2.0)])
    assert log.compact(before=3.0).transactions == 1
    log.close()
    log = make_log()
    log.append([opened("t2", 4.0)])
    log.close()
    tables = raw_tables(log_dir)
    assert list(tables["records"]) == [RECORD_KEY.pack(2, 0)]
    assert tables["meta"][b"last-tn"] == TN.pack(1)


def test_compaction_stops_at_the_first_transaction_opened_after_the_limit(
    make_log: MakeLog,
) -> None:
    log = make_log()
    log.append([opened("long", 1.0), opened("quick", 2.0), opened("late", 10.0)])
    log.append([ended("quick", 3.0), ended("late", 11.0), ended("long", 20.0)])
    # "long" opened before the limit but ended after it: kept, and the walk goes on.
    assert log.compact(before=15.0).transactions == 2
    assert [t.txid for t in log.transactions()] == ["long"]


# -- opening ---------------------------------------------------------------------------------


def test_a_format_1_log_is_refused_and_left_as_it_was(log_dir: Path) -> None:
    with WriteAheadLog(log_dir) as wal:
        wal.append([LogRecord(RecordType.BEGUN, "old-tx", 1.0)])
    with pytest.raises(UnsupportedFormatError) as info:
        LmdbLog(log_dir)
    message = str(info.value)
    assert "format 1" in message and f"dtc upgrade {log_dir} --in-place" in message
    with WriteAheadLog(log_dir) as wal:  # the lock was released; nothing changed
        assert [v.txid for v in wal.unfinished()] == ["old-tx"]


def test_an_lmdb_environment_that_is_not_a_log_is_refused(log_dir: Path) -> None:
    env = lmdb.open(str(log_dir), max_dbs=2)
    env.open_db(b"something-else")
    env.close()
    with pytest.raises(LogError, match="not a dtc-wal log"):
        LmdbLog(log_dir)


def test_a_second_writer_in_this_process_is_refused(make_log: MakeLog, log_dir: Path) -> None:
    make_log()
    with pytest.raises(LogLockedError, match="held by this process"):
        LmdbLog(log_dir)


def test_a_writer_in_another_process_is_refused(log_dir: Path) -> None:
    proc = child("append", "lmdb", str(log_dir), "1000000")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(LogLockedError, match="another live coordinator"):
            LmdbLog(log_dir)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    LmdbLog(log_dir).close()  # the kernel dropped the dead writer's lock


def test_a_reader_in_the_writers_process_is_refused_clearly(
    make_log: MakeLog, log_dir: Path
) -> None:
    make_log()
    with pytest.raises(LogLockedError, match="already open in this process"):
        LmdbLog(log_dir, readonly=True)


def test_a_read_only_log_reads_and_refuses_writes(make_log: MakeLog, log_dir: Path) -> None:
    log = make_log()
    log.append([opened("t1", 1.0)])
    log.close()
    reader = make_log(readonly=True)
    assert [t.txid for t in reader.unfinished()] == ["t1"]
    with pytest.raises(LogError, match="read-only"):
        reader.append([decided("t1")])
    with pytest.raises(LogError, match="read-only"):
        reader.compact(before=10.0)


def test_read_only_open_of_a_missing_log_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no log at"):
        LmdbLog(tmp_path / "nowhere", readonly=True)


def test_the_map_grows_until_its_maximum(
    make_log: MakeLog, caplog: pytest.LogCaptureFixture
) -> None:
    log = make_log(map_size=64 * 1024, max_map_size=1024 * 1024)
    caplog.set_level(logging.INFO, logger="dtc_wal.log")
    big = {"blob": b"x" * 3000}
    for i in range(100):
        log.append([Opened(f"t{i}", 1.0, Mode.SAGA, (), big)])
    assert log.info().map_size > 64 * 1024
    assert any("grew from" in r.getMessage() for r in caplog.records)
    assert log.info().unfinished == 100


# -- damage: one test per mode -----------------------------------------------------------------

VICTIM = "victim"


@pytest.fixture
def three(make_log: MakeLog, log_dir: Path) -> Path:
    """A closed log with three unfinished transactions of three records each (the victim
    is the second, transaction number 2)."""
    log = make_log()
    for txid in ("before", VICTIM, "after"):
        log.append([opened(txid, 1.0)])
        log.append([decided(txid, 2.0)])
        log.append([Failed(txid, 3.0, 0, Op.COMMIT, "TimeoutError", 3)])
    log.close()
    return log_dir


def victim_key(seq: int) -> bytes:
    return RECORD_KEY.pack(2, seq)


def rewrite(log_dir: Path, seq: int, change: Callable[[bytes], bytes]) -> None:
    def apply(txn: lmdb.Transaction, db: Any) -> None:
        key = victim_key(seq)
        txn.put(key, change(bytes(txn.get(key, b"", db=db))), db=db)

    edit(log_dir, "records", apply)


def only_victim_damaged(log: LmdbLog, damage: Damage, seq: int | None) -> RecordDamagedError:
    found = {t.txid: t for t in log.unfinished()}
    assert set(found) == {"before", VICTIM, "after"}
    for txid in ("before", "after"):
        assert found[txid].damage is None and len(found[txid].records) == 3
    error = found[VICTIM].damage
    assert isinstance(error, RecordDamagedError)
    assert (error.txid, error.seq, error.damage) == (VICTIM, seq, damage)
    assert VICTIM in str(error) and "docs/log-format.md" in str(error)
    if seq is not None:
        assert len(found[VICTIM].records) == seq  # the records before the damaged one
    read = log.read(VICTIM)
    assert read is not None and read.damage is not None and read.damage.damage == damage
    return error


def test_damage_truncated(three: Path, make_log: MakeLog) -> None:
    rewrite(three, 1, lambda v: v[:5])
    error = only_victim_damaged(make_log(), Damage.TRUNCATED, 1)
    assert "truncated" in str(error) and "record 1" in str(error)


def test_damage_bad_length(three: Path, make_log: MakeLog) -> None:
    rewrite(three, 1, lambda v: v + b"\x00")
    assert "bad length" in str(only_victim_damaged(make_log(), Damage.BAD_LENGTH, 1))


def test_damage_bad_checksum(three: Path, make_log: MakeLog) -> None:
    rewrite(three, 2, lambda v: v[:-1] + bytes([v[-1] ^ 0x40]))
    assert "checksum" in str(only_victim_damaged(make_log(), Damage.BAD_CHECKSUM, 2))


def test_damage_unknown_version(three: Path, make_log: MakeLog) -> None:
    rewrite(three, 1, lambda v: b"\x03" + v[1:])
    assert "version 3" in str(only_victim_damaged(make_log(), Damage.UNKNOWN_VERSION, 1))


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb({"k": 3}),  # a format-1 style map
        msgpack.packb([99, 1.0]),  # an unknown record type
        msgpack.packb([3, 1.0, 0]),  # a Decided with fields missing
        msgpack.packb([3, "noon", 0, [], None, None]),  # a time that is not a float
        b"\xc1",  # not msgpack at all
    ],
    ids=["map", "type", "fields", "time", "garbage"],
)
def test_damage_bad_payload(three: Path, make_log: MakeLog, payload: bytes) -> None:
    rewrite(three, 1, lambda _v: frame(victim_key(1), payload))  # a valid checksum
    assert "not a valid record" in str(only_victim_damaged(make_log(), Damage.BAD_PAYLOAD, 1))


def test_damage_gap_in_the_sequence(three: Path, make_log: MakeLog) -> None:
    edit(three, "records", lambda txn, db: txn.delete(victim_key(1), db=db))
    error = only_victim_damaged(make_log(), Damage.GAP, 1)
    assert "record 1 of transaction victim is missing" in str(error)


def test_damage_first_record_missing(three: Path, make_log: MakeLog) -> None:
    edit(three, "records", lambda txn, db: txn.delete(victim_key(0), db=db))
    only_victim_damaged(make_log(), Damage.GAP, 0)


def test_damage_a_record_under_another_key_fails_its_checksum(
    three: Path, make_log: MakeLog
) -> None:
    def move(txn: lmdb.Transaction, db: Any) -> None:
        txn.put(victim_key(1), txn.get(RECORD_KEY.pack(1, 1), b"", db=db), db=db)

    edit(three, "records", move)  # a byte-identical, valid record of "before"
    only_victim_damaged(make_log(), Damage.BAD_CHECKSUM, 1)


def test_damage_index_pointing_at_another_transaction(three: Path, make_log: MakeLog) -> None:
    # The victim's unfinished entry moves to transaction 3's records ("after").
    def swap(txn: lmdb.Transaction, db: Any) -> None:
        txn.delete(TN.pack(2), db=db)
        txn.put(TN.pack(3), b"victim", db=db)

    edit(three, "unfinished", swap)
    log = make_log()
    found = {t.txid: t for t in log.unfinished()}
    assert set(found) == {"before", VICTIM}
    error = found[VICTIM].damage
    assert error is not None and (error.damage, error.seq) == (Damage.INDEX, 0)
    assert "names transaction 'after'" in str(error)
    assert found["before"].damage is None


def test_damage_index_entry_with_no_records(three: Path, make_log: MakeLog) -> None:
    edit(three, "unfinished", lambda txn, db: txn.put(TN.pack(9), b"ghost", db=db))
    log = make_log()
    found = {t.txid: t for t in log.unfinished()}
    assert found["ghost"] == StoredTransaction("ghost", (), found["ghost"].damage)
    assert found["ghost"].damage is not None and found["ghost"].damage.damage == Damage.INDEX
    assert found["ghost"].damage.seq is None
    assert all(found[t].damage is None for t in ("before", VICTIM, "after"))


def test_damage_txid_index_value(three: Path, make_log: MakeLog) -> None:
    edit(three, "txns", lambda txn, db: txn.put(b"victim", b"\x00\x02", db=db))
    log = make_log()
    stored = log.read(VICTIM)
    assert stored is not None and stored.damage is not None
    assert stored.damage.damage == Damage.INDEX
    assert [t.txid for t in log.transactions() if t.damage] == [VICTIM]


def test_damaged_transaction_does_not_stop_appends_to_others(
    three: Path, make_log: MakeLog
) -> None:
    rewrite(three, 1, lambda v: v[:3])
    log = make_log()
    log.append([ended("after", 9.0)])
    assert log.read("after") is not None and log.read("after").finished  # type: ignore[union-attr]
    assert log.compact(before=100.0).transactions == 1
    assert {t.txid for t in log.unfinished()} == {"before", VICTIM}


def test_crc_covers_key_header_and_payload() -> None:
    key, payload = RECORD_KEY.pack(7, 1), b"\x93\x02\xcb" + b"\x00" * 8
    value = frame(key, payload)
    head = value[:5]
    assert value[0] == 2 and struct.unpack(">I", value[1:5])[0] == len(payload)
    expected = zlib.crc32(payload, zlib.crc32(head, zlib.crc32(key)))
    assert struct.unpack(">I", value[5:9])[0] == expected


@pytest.mark.parametrize(
    "options",
    [{"map_size": 0}, {"max_map_size": "8G"}, {"lazy_delay": -1}, {"map_size": True}],
    ids=["zero-map", "str-max", "negative-delay", "bool-map"],
)
def test_bad_options_are_refused_before_the_directory_is_touched(
    log_dir: Path, options: dict[str, object]
) -> None:
    with pytest.raises(InvalidOptionError):
        LmdbLog(log_dir, **options)  # type: ignore[arg-type]
    assert not log_dir.exists()


@pytest.mark.parametrize("path", [None, 7, ""])
def test_a_path_that_is_not_a_path_is_refused(path: object) -> None:
    with pytest.raises(InvalidOptionError):
        LmdbLog(path, readonly=True)  # type: ignore[arg-type]


def test_a_prefix_that_is_not_a_str_is_refused(make_log: MakeLog) -> None:
    with pytest.raises(InvalidOptionError):
        make_log().transactions(b"tx")  # type: ignore[arg-type]
