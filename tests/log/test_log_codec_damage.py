"""Every change to a stored format-2 record is caught when it is read, and named by the
check that failed (docs/log-format-2.md, "Reading, and the rule for a damaged record"):
properties over any record -- any one byte changed, any truncation, any extension -- and
the framing cases one by one (what tests/test_records.py checked of format 1's frames).
The damage modes inside a real log are test_log_lmdb.py's."""

from __future__ import annotations

import struct
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtc_wal.errors import LogCorruptError, RecordDamagedError
from dtc_wal.log import Damage
from dtc_wal.log.lmdb.codec import HEADER, RECORD_KEY, decode, encode, frame
from dtc_wal.protocol.records import Ended, Record

from .test_log_codec import TXID, records

KEY = RECORD_KEY.pack(7, 3)
SEQ = 3


def stored(record: Record) -> bytes:
    ((_txid, _key, _code, _at, payload),) = encode([record])
    return frame(KEY, payload)


def damage_of(value: bytes, key: bytes = KEY) -> RecordDamagedError:
    with pytest.raises(RecordDamagedError) as info:
        decode(key, value, TXID, SEQ)
    error = info.value
    assert isinstance(error, LogCorruptError)
    assert (error.txid, error.seq) == (TXID, SEQ)
    assert f"record {SEQ} of transaction {TXID}" in str(error)
    return error


@settings(max_examples=300, deadline=None)
@given(records, st.data())
def test_any_single_byte_change_is_detected(record: Record, data: st.DataObject) -> None:
    value = bytearray(stored(record))
    at = data.draw(st.integers(0, len(value) - 1), label="offset")
    value[at] ^= data.draw(st.integers(1, 255), label="xor")
    error = damage_of(bytes(value))
    expected = {0: Damage.UNKNOWN_VERSION}.get(
        at, Damage.BAD_LENGTH if at < 5 else Damage.BAD_CHECKSUM
    )
    assert error.damage == expected


@settings(max_examples=200, deadline=None)
@given(records, st.data())
def test_any_truncation_is_detected(record: Record, data: st.DataObject) -> None:
    value = stored(record)
    cut = data.draw(st.integers(0, len(value) - 1), label="keep")
    error = damage_of(value[:cut])
    assert error.damage == (Damage.TRUNCATED if cut < HEADER.size else Damage.BAD_LENGTH)


@settings(max_examples=100, deadline=None)
@given(records, st.binary(min_size=1, max_size=8))
def test_any_extension_is_detected(record: Record, extra: bytes) -> None:
    assert damage_of(stored(record) + extra).damage == Damage.BAD_LENGTH


@settings(max_examples=100, deadline=None)
@given(records, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_a_record_read_under_another_key_fails_its_checksum(
    record: Record, tn: int, seq: int
) -> None:
    other = RECORD_KEY.pack(tn, seq)
    if other == KEY:
        return
    assert damage_of(stored(record), key=other).damage == Damage.BAD_CHECKSUM


def test_a_damaged_stored_checksum_is_caught() -> None:
    value = bytearray(stored(Ended(TXID, 1.0)))
    value[6] ^= 0x01  # inside the CRC field
    assert damage_of(bytes(value)).damage == Damage.BAD_CHECKSUM


def test_a_header_that_declares_more_payload_than_is_stored() -> None:
    value = stored(Ended(TXID, 1.0))
    assert damage_of(value[: HEADER.size]).damage == Damage.BAD_LENGTH


@pytest.mark.parametrize("version", [0, 1, 3, 255])
def test_an_unknown_version_is_named(version: int) -> None:
    value = bytes([version]) + stored(Ended(TXID, 1.0))[1:]
    error = damage_of(value)
    assert error.damage == Damage.UNKNOWN_VERSION and f"version {version}" in str(error)


def _framed(payload: bytes) -> bytes:
    head = struct.pack(">BI", 2, len(payload))
    return (
        head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head, zlib.crc32(KEY)))) + payload
    )


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb([5, 1.0, []]) + b"\x00",  # a valid record with trailing bytes
        b"",  # nothing
        msgpack.packb([]),  # an empty array
        msgpack.packb("Ended"),  # not an array
        msgpack.packb([5, 1.0, [[0, 9]]]),  # an unknown acknowledgement code
        msgpack.packb([5, 1.0, [[-1, 0]]]),  # a negative member
        msgpack.packb([2, 1.0, 0, "extra"]),  # a field too many
    ],
    ids=["trailing", "empty", "empty-array", "not-array", "ack-code", "negative", "extra-field"],
)
def test_a_payload_that_passes_its_checksum_but_is_not_a_record(payload: bytes) -> None:
    error = damage_of(_framed(payload))
    assert error.damage == Damage.BAD_PAYLOAD
    assert "passes its checksum but is not a valid record" in str(error)


def test_a_valid_frame_of_a_valid_record_decodes() -> None:
    assert decode(KEY, _framed(msgpack.packb([5, 1.0, []])), TXID, SEQ) == Ended(TXID, 1.0)
