"""The format-2 codec: every record reads back equal, and the encoder refuses whatever the
decoder would not accept back (so nothing written is unreadable)."""

from __future__ import annotations

import types
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtc_wal.errors import InvalidTransactionIdError, UnencodableDataError
from dtc_wal.log.lmdb.codec import MAX_TXID_BYTES, RECORD_KEY, decode, encode, frame, txid_key
from dtc_wal.log_values import encode_mapping
from dtc_wal.protocol.records import (
    Acked,
    Decided,
    Ended,
    Failed,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    Outcome,
    Record,
    Resolved,
    StepDone,
    Vote,
)

TXID = "3f2a9c1e-5b7d-4e0f-9a8b-1c2d3e4f5a6b"

times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
small = st.integers(min_value=0, max_value=2**31)
text = st.text(max_size=20)
opt_text = st.none() | text
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | text | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
maps = st.none() | st.dictionaries(text, values, max_size=4)
ACK_STATES = (MemberState.COMMITTED, MemberState.ROLLED_BACK, MemberState.SKIPPED)
acks = st.lists(st.tuples(small, st.sampled_from(ACK_STATES)), max_size=4).map(tuple)

records: st.SearchStrategy[Record] = st.one_of(
    st.builds(
        Opened,
        st.just(TXID),
        times,
        st.sampled_from(Mode),
        st.lists(st.builds(MemberSpec, text, opt_text, maps), max_size=4).map(tuple),
        maps,
    ),
    st.builds(StepDone, st.just(TXID), times, small),
    st.builds(
        Decided,
        st.just(TXID),
        times,
        st.sampled_from(Outcome),
        st.lists(st.tuples(small, st.sampled_from(Vote)), max_size=4).map(tuple),
        opt_text,
        opt_text,
    ),
    st.builds(Acked, st.just(TXID), times, acks),
    st.builds(Ended, st.just(TXID), times, acks),
    st.builds(Failed, st.just(TXID), times, small, st.sampled_from(Op), text, small),
    st.builds(Resolved, st.just(TXID), times, small, st.sampled_from(Outcome), text, text),
)


def round_trip(record: Record, seq: int = 0) -> Record:
    ((txid, key, _code, _at, payload),) = encode([record])
    assert (txid, key) == (record.txid, record.txid.encode())
    rkey = RECORD_KEY.pack(5, seq)
    return decode(rkey, frame(rkey, payload), record.txid, seq)


@given(records)
def test_every_record_reads_back_equal(record: Record) -> None:
    assert round_trip(record) == record


def test_an_int_time_reads_back_as_the_same_float() -> None:
    decoded = round_trip(Ended(TXID, 1700000000))
    assert decoded == Ended(TXID, 1700000000.0) and type(decoded.at) is float


def test_any_mapping_is_stored_as_a_map() -> None:
    params = types.MappingProxyType({"sku": "A1"})
    record = Opened(TXID, 1.0, Mode.SAGA, (MemberSpec("a", "f", params),), {"x": 1})
    decoded = round_trip(record)
    assert isinstance(decoded, Opened) and decoded.members[0].params == {"sku": "A1"}


@pytest.mark.parametrize(
    "record",
    [
        Opened(TXID, 1.0, Mode.SAGA, (MemberSpec(7, "f"),)),  # type: ignore[arg-type]
        Opened(TXID, 1.0, Mode.SAGA, (MemberSpec("a", 7),)),  # type: ignore[arg-type]
        Opened(TXID, 1.0, Mode.SAGA, (MemberSpec("a", "f", [1]),)),  # type: ignore[arg-type]
        Opened(TXID, 1.0, "3pc", ()),  # type: ignore[arg-type]
        Opened(TXID, 1.0, Mode.SAGA, (), {"d": object()}),
        Opened(TXID, "noon", Mode.SAGA, ()),  # type: ignore[arg-type]
        Decided(TXID, 1.0, Outcome.COMMIT, ((0, "maybe"),)),  # type: ignore[arg-type]
        Decided(TXID, 1.0, Outcome.COMMIT, reason=5),  # type: ignore[arg-type]
        Ended(TXID, 1.0, ((-1, MemberState.COMMITTED),)),
        Ended(TXID, 1.0, ((True, MemberState.COMMITTED),)),
        Ended(TXID, 1.0, ((0, "done"),)),  # type: ignore[arg-type]
        Failed(TXID, 1.0, 0, Op.COMMIT, ValueError("x"), 1),  # type: ignore[arg-type]
        Resolved(TXID, 1.0, 0, Outcome.COMMIT, None, "why"),  # type: ignore[arg-type]
        StepDone(TXID, 1.0, 2**70),
    ],
    ids=lambda r: type(r).__name__,
)
def test_the_encoder_refuses_what_would_not_read_back(record: Record) -> None:
    with pytest.raises(UnencodableDataError) as info:
        encode([record])
    assert TXID in str(info.value) and type(record).__name__ in str(info.value)
    # The per-thread packer is clean after an error.
    assert round_trip(Ended(TXID, 1.0)) == Ended(TXID, 1.0)


def test_a_value_that_is_not_a_record_is_refused() -> None:
    with pytest.raises(UnencodableDataError, match="not a format-2 log record"):
        encode(["not a record"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("txid", "ok"),
    [
        ("x" * MAX_TXID_BYTES, True),
        ("x" * (MAX_TXID_BYTES + 1), False),
        ("é" * (MAX_TXID_BYTES // 2), True),  # 2 bytes each in UTF-8
        ("é" * (MAX_TXID_BYTES // 2 + 1), False),
        ("", False),
        ("\udcff", False),
        (b"bytes", False),
    ],
)
def test_txid_limits(txid: Any, ok: bool) -> None:
    if ok:
        assert txid_key(txid) == txid.encode()
    else:
        with pytest.raises(InvalidTransactionIdError):
            txid_key(txid)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"items": [1, (2, 3)]}, "data['items'][1] is a tuple"),
        ({7: "seven"}, "key of type int"),
        ({"when": {1, 2}}, "set"),
    ],
    ids=["tuple", "int-key", "set"],
)
def test_data_follows_the_rule_of_what_the_log_accepts(data: Any, says: str) -> None:
    with pytest.raises(UnencodableDataError) as info:
        encode([Opened(TXID, 1.0, Mode.TWO_PHASE, (), data)])
    assert says in str(info.value) and f"Opened record of transaction {TXID}" in str(info.value)


def test_params_are_named_in_a_refusal() -> None:
    member = MemberSpec("inventory", "inv", {"sku": ("A", 1)})
    with pytest.raises(UnencodableDataError, match=r"params of 'inventory'\['sku'\]"):
        encode([Opened(TXID, 1.0, Mode.TWO_PHASE, (member,))])


def test_checked_maps_are_written_as_checked() -> None:
    data = encode_mapping({"qty": 2}, "data", None)
    params = encode_mapping({"sku": "A1"}, "params", None)
    record = Opened(TXID, 1.0, Mode.SAGA, (MemberSpec("a", "f", params),), data)
    payload = encode([record])[0][4]
    data["qty"] = 99  # a participant changing the dict it was given, after the check
    decoded = decode(RECORD_KEY.pack(1, 0), frame(RECORD_KEY.pack(1, 0), payload), TXID, 0)
    assert isinstance(decoded, Opened)
    assert decoded.data == {"qty": 2} and decoded.members[0].params == {"sku": "A1"}
    assert data.packed in payload and params.packed in payload
