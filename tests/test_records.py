"""Record framing and encoding (dtc_wal/records.py): round trips and one test per damage
mode, LevelDB ``db/log_test.cc`` style."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import lmdb
import pytest
from dtc_wal.records import (
    FORMAT_VERSION,
    HEADER,
    LogRecord,
    decode_record,
    encode_record,
    frame,
    key_lsn,
    lsn_key,
    pack,
    unframe,
)
from dtc_wal.wal import WriteAheadLog
from helpers import record
from hypothesis import given, settings
from hypothesis import strategies as st

from dtc_wal.errors import (
    LogCorruptError,
    TransactionDamagedError,
    UnencodableDataError,
    UnsupportedFormatError,
)
from dtc_wal.states import Mode, Outcome, RecordType

# One fully populated example per record type, with the fields that type carries.
EXAMPLES: dict[RecordType, LogRecord] = {
    RecordType.BEGUN: LogRecord(RecordType.BEGUN, "tx-a", 1.5, mode=Mode.TWO_PHASE),
    RecordType.ENLISTED: LogRecord(
        RecordType.ENLISTED,
        "tx-a",
        2.0,
        participant="inventory",
        factory="inventory",
        params={"sku": "A1", "n": [1, 2, {"deep": b"\x00\xff"}]},
        order=3,
        mode=Mode.SAGA,
    ),
    RecordType.PREPARED: LogRecord(RecordType.PREPARED, "tx-a", 3.0, participant="p"),
    RecordType.DECIDED_COMMIT: LogRecord(
        RecordType.DECIDED_COMMIT, "tx-a", 4.0, data={"sku": "A1", "version": 7}
    ),
    RecordType.DECIDED_ABORT: LogRecord(
        RecordType.DECIDED_ABORT, "tx-a", 5.0, reason="p voted no", actor="operator"
    ),
    RecordType.ACKNOWLEDGED: LogRecord(
        RecordType.ACKNOWLEDGED, "tx-a", 6.0, participant="p", outcome=Outcome.SKIP
    ),
    RecordType.COMPLETED: LogRecord(RecordType.COMPLETED, "tx-a", 7),
    RecordType.FAILED: LogRecord(
        RecordType.FAILED, "tx-a", 8.0, participant="p", error="ConnectionError: x", attempts=4
    ),
    RecordType.RESOLVED: LogRecord(
        RecordType.RESOLVED,
        "tx-a",
        9.0,
        participant="p",
        outcome=Outcome.ROLLBACK,
        reason="host gone",
        actor="alice",
    ),
}


def test_examples_cover_every_record_type() -> None:
    assert set(EXAMPLES) == set(RecordType)


@pytest.mark.parametrize("kind", list(RecordType), ids=lambda k: k.name)
def test_round_trip_every_record_type(kind: RecordType) -> None:
    original = EXAMPLES[kind]
    decoded = decode_record(encode_record(original), lsn=42)
    assert decoded == original
    assert type(decoded.type) is RecordType
    if original.mode is not None:
        assert type(decoded.mode) is Mode
    if original.outcome is not None:
        assert type(decoded.outcome) is Outcome


def test_minimal_record_round_trips_with_absent_fields_as_none() -> None:
    decoded = decode_record(encode_record(LogRecord(RecordType.BEGUN, "t", 0.0)))
    assert decoded == LogRecord(RecordType.BEGUN, "t", 0.0)
    assert decoded.participant is None and decoded.params is None


def test_frame_layout_is_byte_exact() -> None:
    """docs/log-format.md: version (1 byte), length (u32 BE), CRC-32 of bytes 0..4 and the
    payload (u32 BE), then the msgpack payload."""
    value = encode_record(EXAMPLES[RecordType.PREPARED])
    version, length, crc = struct.unpack(">BII", value[:9])
    payload = value[9:]
    assert HEADER.size == 9
    assert version == FORMAT_VERSION == 1
    assert length == len(payload)
    assert crc == zlib.crc32(value[:5] + payload)
    assert unframe(value) == payload


def test_lsn_keys_are_8_byte_big_endian() -> None:
    assert lsn_key(1) == b"\x00\x00\x00\x00\x00\x00\x00\x01"
    assert lsn_key(0x0102030405060708) == bytes(range(1, 9))
    assert key_lsn(lsn_key(2**64 - 1)) == 2**64 - 1
    # byte order is numeric order, so LMDB's key order is log order
    assert sorted(lsn_key(n) for n in (256, 1, 255, 65536)) == [
        lsn_key(n) for n in (1, 255, 256, 65536)
    ]


# --- one test per damage mode ------------------------------------------------------------


def test_bad_crc_flipped_payload_byte() -> None:
    value = bytearray(encode_record(EXAMPLES[RecordType.ENLISTED]))
    value[HEADER.size + 3] ^= 0x01
    with pytest.raises(LogCorruptError, match="LSN 17 fails its checksum") as info:
        decode_record(bytes(value), lsn=17)
    assert info.value.lsn == 17
    assert type(info.value) is LogCorruptError


def test_bad_crc_damaged_stored_checksum() -> None:
    value = bytearray(encode_record(EXAMPLES[RecordType.BEGUN]))
    value[5] ^= 0x80
    with pytest.raises(LogCorruptError, match="checksum") as info:
        decode_record(bytes(value), lsn=3)
    assert info.value.lsn == 3


def test_damaged_length_field_is_caught() -> None:
    value = bytearray(encode_record(EXAMPLES[RecordType.BEGUN]))
    value[4] ^= 0x01  # length now disagrees with the payload
    with pytest.raises(LogCorruptError, match="LSN 9 has a bad length") as info:
        decode_record(bytes(value), lsn=9)
    assert info.value.lsn == 9


@pytest.mark.parametrize("size", [0, 1, HEADER.size - 1])
def test_truncated_shorter_than_header(size: int) -> None:
    value = encode_record(EXAMPLES[RecordType.BEGUN])[:size]
    with pytest.raises(LogCorruptError, match=r"LSN 5 is truncated") as info:
        decode_record(value, lsn=5)
    assert info.value.lsn == 5
    assert type(info.value) is LogCorruptError


@pytest.mark.parametrize("cut", [1, 5])
def test_truncated_shorter_than_declared_length(cut: int) -> None:
    value = encode_record(EXAMPLES[RecordType.ENLISTED])
    with pytest.raises(LogCorruptError, match=r"LSN 6 has a bad length") as info:
        decode_record(value[:-cut], lsn=6)
    assert info.value.lsn == 6


def test_header_only_record_with_declared_payload_is_truncated() -> None:
    value = encode_record(EXAMPLES[RecordType.BEGUN])[: HEADER.size]
    with pytest.raises(LogCorruptError, match="bad length") as info:
        decode_record(value, lsn=8)
    assert info.value.lsn == 8


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_format_version(version: int) -> None:
    value = frame(pack({"k": 1, "x": "t", "t": 0.0}), version=version)
    with pytest.raises(UnsupportedFormatError, match=f"LSN 11 has format version {version}") as i:
        decode_record(value, lsn=11)
    assert i.value.lsn == 11
    assert isinstance(i.value, LogCorruptError)  # a handler for corruption still catches it


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ([1, 2, 3], "its payload is a msgpack list, not a map"),
        ({"x": "t", "t": 0.0}, "it has no record type (field 'k')"),
        ({"k": 99, "x": "t", "t": 0.0}, "its record type 99 is unknown"),
        ({"k": 1, "t": 0.0}, "field txid is missing"),
        ({"k": 1, "x": "t"}, "field at is missing"),
        ({"k": 1, "x": 7, "t": 0.0}, "field txid is an int, not a str"),
        ({"k": 1, "x": "t", "t": "noon"}, "field at is a str, not a number"),
        ({"k": 1, "x": "t", "t": 0.0, "zz": 1}, "it has an unknown field 'zz'"),
        ({"k": 2, "x": "t", "t": 0.0, "m": "3pc"}, "its mode '3pc' is unknown"),
        ({"k": 6, "x": "t", "t": 0.0, "o": "maybe"}, "its outcome 'maybe' is unknown"),
        (
            {"k": 2, "x": "t", "t": 0.0, "p": "a", "m": "2pc", "a": [1, 2]},
            "field params is a list, not a map",
        ),
        (
            {"k": 2, "x": "t", "t": 0.0, "p": "a", "m": "2pc", "n": "first"},
            "field order is a str, not an int",
        ),
        ({"k": 3, "x": "t", "t": 0.0, "p": 5}, "field participant is an int, not a str"),
        ({"k": 8, "x": "t", "t": 0.0, "p": "a", "c": "many"}, "field attempts is a str, not"),
        ({"k": 5, "x": "t", "t": 0.0, "r": ["why"]}, "field reason is a list, not a str"),
    ],
    ids=[
        "not-a-map",
        "no-type",
        "unknown-type",
        "no-txid",
        "no-time",
        "txid-type",
        "time-type",
        "unknown-field",
        "unknown-mode",
        "unknown-outcome",
        "params-type",
        "order-type",
        "participant-type",
        "attempts-type",
        "reason-type",
    ],
)
def test_payload_passes_crc_but_is_not_a_record(body: object, what: str) -> None:
    value = frame(pack(body))
    assert unframe(value)  # the frame itself is sound
    with pytest.raises(LogCorruptError, match="LSN 21 passes its checksum") as info:
        decode_record(value, lsn=21)
    assert info.value.lsn == 21
    assert type(info.value) is LogCorruptError
    message = str(info.value)
    assert f"is not a valid record of format 1: {what}" in message  # what failed
    assert "run `dtc verify` and see docs/recovery.md" in message  # what to do
    assert "incompatible writer" not in message  # the version matched: no other writer


def test_payload_that_is_not_msgpack() -> None:
    value = frame(b"\xc1")  # 0xc1 is never valid msgpack
    with pytest.raises(LogCorruptError, match=r"LSN 2 passes .* payload is not msgpack") as info:
        decode_record(value, lsn=2)
    assert info.value.lsn == 2


def test_payload_with_trailing_bytes() -> None:
    value = frame(pack({"k": 1, "x": "t", "t": 0.0}) + b"\x00")
    with pytest.raises(LogCorruptError) as info:
        decode_record(value, lsn=4)
    assert info.value.lsn == 4


def test_damage_without_lsn_still_raises() -> None:
    with pytest.raises(LogCorruptError, match="record is truncated") as info:
        decode_record(b"\x01")
    assert info.value.lsn is None


def test_encoding_an_unencodable_record_raises_a_dtc_error() -> None:
    bad = LogRecord(RecordType.DECIDED_COMMIT, "tx-z", 0.0, data={"when": object()})
    with pytest.raises(UnencodableDataError, match="DECIDED_COMMIT record of transaction tx-z"):
        encode_record(bad)


# --- damage inside a real log ----------------------------------------------------------


def _rewrite(log_dir: Path, lsn: int, change: bytes | None) -> None:
    """Overwrite (or delete, with None) one value in the ``records`` table with lmdb."""
    env = lmdb.open(str(log_dir), max_dbs=8, subdir=True)
    try:
        records = env.open_db(b"records", create=False)
        with env.begin(write=True) as txn:
            if change is None:
                assert txn.delete(lsn_key(lsn), db=records)
            else:
                assert txn.get(lsn_key(lsn), db=records) is not None
                txn.put(lsn_key(lsn), change, db=records)
    finally:
        env.close()


def _log_with_unfinished_and_finished(log_dir: Path) -> tuple[list[int], list[int]]:
    """tx-open stays unfinished; tx-done completes. Returns their LSNs."""
    with WriteAheadLog(log_dir) as wal:
        open_lsns = wal.append(
            [
                record(RecordType.BEGUN, "tx-open"),
                record(
                    RecordType.ENLISTED,
                    "tx-open",
                    participant="p",
                    mode=Mode.TWO_PHASE,
                    params={"sku": "A1"},
                ),
            ]
        )
        done_lsns = wal.append(
            [
                record(RecordType.BEGUN, "tx-done"),
                record(RecordType.DECIDED_ABORT, "tx-done", reason="test"),
                record(RecordType.COMPLETED, "tx-done"),
            ]
        )
    assert open_lsns is not None and done_lsns is not None
    return open_lsns, done_lsns


@pytest.mark.parametrize(
    "damage",
    [
        "flip-payload-byte",
        "truncate-header",
        "truncate-payload",
        "version",
        "not-a-record",
        "field-type",
    ],
)
def test_damaged_record_of_unfinished_transaction_is_put_aside_at_reopen(
    log_dir: Path, damage: str
) -> None:
    (_, enlisted_lsn), _ = _log_with_unfinished_and_finished(log_dir)
    good = encode_record(
        record(RecordType.ENLISTED, "tx-open", participant="p", mode=Mode.TWO_PHASE)
    )
    if damage == "flip-payload-byte":
        bad = bytearray(good)
        bad[-1] ^= 0xFF
        value, error = bytes(bad), LogCorruptError
    elif damage == "truncate-header":
        value, error = good[:4], LogCorruptError
    elif damage == "truncate-payload":
        value, error = good[:-2], LogCorruptError
    elif damage == "version":
        value, error = (
            frame(good[HEADER.size :], version=FORMAT_VERSION + 1),
            (UnsupportedFormatError),
        )
    elif damage == "not-a-record":
        value, error = frame(pack({"k": 2, "x": "tx-open"})), LogCorruptError
    else:  # well framed, but params is a list
        body = {"k": 2, "x": "tx-open", "t": 1.0, "p": "p", "m": "2pc", "a": [1]}
        value, error = frame(pack(body)), LogCorruptError
    _rewrite(log_dir, enlisted_lsn, value)
    with pytest.raises(error, match=f"LSN {enlisted_lsn}"):
        decode_record(value, enlisted_lsn)

    for _ in range(2):  # the open succeeds, the damage stays, a reopen says the same
        with WriteAheadLog(log_dir) as wal:
            [damaged] = wal.damaged()
            assert (damaged.txid, damaged.lsn) == ("tx-open", enlisted_lsn)
            assert wal.unfinished() == []
            with pytest.raises(TransactionDamagedError, match=f"LSN {enlisted_lsn}") as info:
                wal.view("tx-open")
            assert info.value.lsn == enlisted_lsn


def test_missing_record_of_unfinished_transaction_is_put_aside_at_reopen(log_dir: Path) -> None:
    (_, enlisted_lsn), _ = _log_with_unfinished_and_finished(log_dir)
    _rewrite(log_dir, enlisted_lsn, None)
    with WriteAheadLog(log_dir) as wal:
        [damaged] = wal.damaged()
        assert (damaged.txid, damaged.lsn) == ("tx-open", enlisted_lsn)
        assert f"LSN {enlisted_lsn} is missing" in damaged.reason


def test_damaged_record_of_finished_transaction_is_not_read_at_open(log_dir: Path) -> None:
    """Start-up reads only unfinished transactions, so damage in finished history does not
    stop it (``dtc verify`` is what finds it); reading that transaction still raises."""
    (begun_lsn, _), done_lsns = _log_with_unfinished_and_finished(log_dir)
    _rewrite(log_dir, done_lsns[1], b"\x01\x00")
    with WriteAheadLog(log_dir) as wal:
        assert [v.txid for v in wal.unfinished()] == ["tx-open"]
        assert wal.unfinished()[0].lsns[0] == begun_lsn
        with pytest.raises(LogCorruptError, match=f"LSN {done_lsns[1]}"):
            wal.view("tx-done")


# --- properties -------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_records = st.builds(
    LogRecord,
    type=st.sampled_from(RecordType),
    txid=st.text(min_size=1, max_size=40),
    at=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    participant=st.none() | st.text(max_size=20),
    factory=st.none() | st.text(max_size=20),
    params=st.none() | st.dictionaries(st.text(max_size=8), _values, max_size=4),
    order=st.none() | st.integers(min_value=0, max_value=2**31),
    mode=st.none() | st.sampled_from(Mode),
    outcome=st.none() | st.sampled_from(Outcome),
    reason=st.none() | st.text(max_size=30),
    data=_values,
    error=st.none() | st.text(max_size=30),
    attempts=st.none() | st.integers(min_value=0, max_value=1000),
    actor=st.none() | st.text(max_size=10),
)


@settings(max_examples=200, deadline=None)
@given(_records)
def test_any_record_round_trips(original: LogRecord) -> None:
    assert decode_record(encode_record(original), lsn=1) == original


@settings(max_examples=200, deadline=None)
@given(_records, st.data())
def test_any_single_byte_change_is_detected(original: LogRecord, data: st.DataObject) -> None:
    value = bytearray(encode_record(original))
    at = data.draw(st.integers(0, len(value) - 1), label="offset")
    value[at] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(LogCorruptError) as info:
        decode_record(bytes(value), lsn=77)
    assert info.value.lsn == 77


@settings(max_examples=100, deadline=None)
@given(_records, st.data())
def test_any_truncation_is_detected(original: LogRecord, data: st.DataObject) -> None:
    value = encode_record(original)
    cut = data.draw(st.integers(0, len(value) - 1), label="keep")
    with pytest.raises(LogCorruptError) as info:
        decode_record(value[:cut], lsn=78)
    assert info.value.lsn == 78
