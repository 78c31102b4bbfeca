"""What the log accepts, on format 2 (dtc_wal/log_values.py, docs/protocol.md "What the log
accepts"), through the coordinator: the path in refusals, the depth and size limits, str
keys, and what is accepted reading back from the log as plain values. The property test
is test_log_values_property_format2.py; the codec's own refusals are test_log_codec.py.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import pytest
from helpers import FOREVER, Failures, Journal, RecordingParticipant, RecordingStep

from dtc_wal import ParticipantRegistry, TransactionAborted, TransactionCoordinator
from dtc_wal import errors as E
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log_values import DEFAULT_MAX_DATA_BYTES, MAX_DEPTH
from dtc_wal.protocol.records import Decided, Ended, Opened, Outcome
from dtc_wal.states import Mode, TxState

MakeCoord = Callable[..., TransactionCoordinator]


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, datetime=False)  # type: ignore[no-any-return]


def log_of(coord: TransactionCoordinator) -> LmdbLog:
    assert isinstance(coord.log, LmdbLog), "a format-2 coordinator"  # type: ignore[attr-defined]
    return coord.log  # type: ignore[attr-defined,no-any-return]


def _refusal(coord: TransactionCoordinator, data: Any) -> str:
    """Commit ``data`` in a fresh transaction; return the refusal, after checking that
    nothing was sent or logged and that the transaction is still open."""
    journal = Journal()
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal))
    with pytest.raises(E.UnencodableDataError) as info:
        coord.commit_transaction(txid, data=data)
    assert journal.calls == []
    coord.flush()
    assert log_of(coord).read(txid) is None
    assert coord.state(txid) is TxState.ACTIVE
    coord.rollback_transaction(txid)
    return str(info.value)


def _logged_data(coord: TransactionCoordinator, txid: str) -> Any:
    """The data the log holds for ``txid``: format 2 keeps it in the Opened record."""
    coord.flush()
    stored = log_of(coord).read(txid)
    assert stored is not None and stored.damage is None
    opened = stored.records[0]
    assert isinstance(opened, Opened)
    return opened.data


# --- the path of the offending value ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"a": [0, 1, 2, (3,)]}, "data['a'][3] is a tuple, which the log would read back as a"),
        ({"a": {"b": {"c": {1, 2}}}}, "data['a']['b']['c'] is a set"),
        ({"a": [{"b": bytearray(b"x")}]}, "data['a'][0]['b'] is a bytearray"),
        ({"n": [1, 2**64]}, "data['n'][1] is the int 18446744073709551616, outside"),
        ({"n": -(2**63) - 1}, "data['n'] is the int -9223372036854775809, outside"),
        ({"s": ["ok", "a\udc80"]}, "data['s'][1] is a str that is not valid UTF-8 text"),
        ({"a": {"k\ud800": 1}}, "data['a'] has a key that is not valid UTF-8 text"),
        ({"a": {7: "x"}}, "data['a'] has a key of type int (7); the log takes only str keys"),
        ({"when": object()}, "data['when'] is an object, which the log cannot store"),
        ({"e": Mode}, "data['e'] is an EnumType"),
    ],
)
def test_the_message_names_the_path(
    coord: TransactionCoordinator, data: dict[str, Any], message: str
) -> None:
    text = _refusal(coord, data)
    assert text.startswith(message), text
    assert 'docs/protocol.md, "What the log accepts"' in text


def test_params_paths_name_the_factory(
    make_coord: MakeCoord, registry: ParticipantRegistry, journal: Journal
) -> None:
    built: list[dict[str, Any]] = []
    registry.register("inventory", lambda **p: built.append(p) or RecordingParticipant("i"))
    registry.register("stock", lambda **p: built.append(p) or RecordingStep("s", journal))
    coord = make_coord()
    txid = coord.begin_transaction()
    with pytest.raises(E.UnencodableDataError, match=r"^params of 'inventory'\['sku'\]\[0\] is"):
        coord.enlist_participant(txid, "inventory", params={"sku": [(1, 2)]})
    saga = coord.begin_transaction()
    with pytest.raises(E.UnencodableDataError, match=r"^params of 'stock' has a key of type"):
        coord.register_participant(saga, "reserve", factory="stock", params={b"sku": 1})
    assert built == []  # no factory ran
    coord.enlist_participant(txid, "inventory", params={"sku": ["A1"]})  # still usable
    coord.commit_transaction(txid)
    assert coord.state(txid) is TxState.COMMITTED
    stored = log_of(coord).read(txid)
    assert stored is not None and isinstance(stored.records[0], Opened)
    assert [m.params for m in stored.records[0].members] == [{"sku": ["A1"]}]


# --- the top level: a mapping with str keys --------------------------------------------


@pytest.mark.parametrize("key", [1, None, b"k", True, 2.5, ("a",)], ids=repr)
def test_top_level_keys_are_str(coord: TransactionCoordinator, key: Any) -> None:
    text = _refusal(coord, {"fine": 1, key: "x"})
    assert text.startswith(f"data has a key of type {type(key).__name__}"), text
    assert "only str keys, at every level" in text


@pytest.mark.parametrize("data", [[("a", 1)], "abc", 5, {"a", "b"}], ids=repr)
def test_top_level_is_a_mapping(coord: TransactionCoordinator, data: Any) -> None:
    text = _refusal(coord, data)
    assert text.startswith(
        f"data must be a mapping with str keys (a dict), not {type(data).__name__}"
    )


def test_what_is_accepted_reads_back_as_plain_values(coord: TransactionCoordinator) -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    class Color(enum.StrEnum):
        RED = "red"

    data = {
        Color.RED: [Level.HIGH, True, None, -(2**63), 2**64 - 1, float("inf"), -0.0],
        "bytes": b"\x00\xff",
        "nested": {"": {"ü": "ø"}},
    }
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a"))
    coord.commit_transaction(txid, data=data)
    read = _logged_data(coord, txid)
    assert read == data
    assert type(next(iter(read))) is str and type(read["red"][0]) is int
    assert pack(read) == pack(data)


# --- limits --------------------------------------------------------------------------


def _nested(levels: int) -> dict[str, Any]:
    """A mapping ``levels`` containers deep, the top level included."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def test_depth_limit(coord: TransactionCoordinator) -> None:
    deepest = _nested(MAX_DEPTH)
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a"))
    coord.commit_transaction(txid, data=deepest)
    assert _logged_data(coord, txid) == deepest
    text = _refusal(coord, _nested(MAX_DEPTH + 1))
    assert text.startswith("data" + "['x']" * MAX_DEPTH + f" nests more than {MAX_DEPTH}")
    loop: list[Any] = []
    loop.append(loop)  # a cycle is refused by the same limit, not a RecursionError
    assert "nests more than" in _refusal(coord, {"loop": loop})


def test_size_limit_by_default(coord: TransactionCoordinator) -> None:
    assert coord.max_data_bytes == DEFAULT_MAX_DATA_BYTES == 1024 * 1024
    overhead = len(pack({"blob": b"x" * 70000})) - 70000  # map, key, bin 32 header
    fits = {"blob": b"x" * (DEFAULT_MAX_DATA_BYTES - overhead)}
    assert len(pack(fits)) == DEFAULT_MAX_DATA_BYTES
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a"))
    coord.commit_transaction(txid, data=fits)
    assert _logged_data(coord, txid) == fits
    journal = Journal()
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal))
    with pytest.raises(E.DataTooLargeError) as info:
        coord.commit_transaction(txid, data={"blob": b"x" * DEFAULT_MAX_DATA_BYTES})
    assert isinstance(info.value, E.UnencodableDataError)
    assert info.value.limit == DEFAULT_MAX_DATA_BYTES
    assert info.value.size == DEFAULT_MAX_DATA_BYTES + overhead
    assert f"data is {info.value.size:,} bytes encoded, more than max_data_bytes=1,048,576" in (
        str(info.value)
    )
    assert journal.calls == []
    coord.flush()
    assert log_of(coord).read(txid) is None


def test_size_limit_option_applies_to_data_and_params(
    make_coord: MakeCoord, registry: ParticipantRegistry
) -> None:
    registry.register("thing", lambda **p: RecordingParticipant("thing"))
    coord = make_coord(max_data_bytes=100)
    txid = coord.begin_transaction()
    with pytest.raises(E.DataTooLargeError, match=r"^params of 'thing' is 1\d\d bytes encoded"):
        coord.enlist_participant(txid, "thing", params={"s": "x" * 100})
    coord.enlist_participant(txid, "thing", params={"s": "x" * 50})
    with pytest.raises(E.DataTooLargeError, match="more than max_data_bytes=100"):
        coord.commit_transaction(txid, data={"s": "x" * 100})
    coord.commit_transaction(txid, data={"s": "x" * 50})
    assert coord.state(txid) is TxState.COMMITTED
    assert _logged_data(coord, txid) == {"s": "x" * 50}


def test_no_size_limit(make_coord: MakeCoord) -> None:
    coord = make_coord(max_data_bytes=None)
    big = {"blob": b"x" * (2 * DEFAULT_MAX_DATA_BYTES)}
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a"))
    coord.commit_transaction(txid, data=big)
    assert _logged_data(coord, txid) == big


# --- a refused value leaves the log readable ----------------------------------------------


def test_a_tuple_key_is_refused_and_the_log_stays_readable(
    make_coord: MakeCoord, registry: ParticipantRegistry
) -> None:
    journal = Journal()
    registry.register("thing", lambda **p: RecordingParticipant("thing", journal))
    coord = make_coord()
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, "thing")
    with pytest.raises(E.UnencodableDataError, match=r"^data\['a'\] has a key of type tuple"):
        coord.commit_transaction(txid, data={"a": {(1, 2): 3}})
    assert journal.calls == []
    coord.commit_transaction(txid, data={"a": {"1,2": 3}})  # the transaction is usable
    coord.abandon()  # a crash: the lazy records are lost, the decision is on disk
    reopened = make_coord()  # opens, reads the decision, finishes the transaction
    assert reopened.state(txid) is TxState.COMMITTED
    assert _logged_data(reopened, txid) == {"a": {"1,2": 3}}


# --- the checked bytes are what is logged ----------------------------------------------


def test_a_participant_changing_data_does_not_change_what_is_logged(
    coord: TransactionCoordinator,
) -> None:
    def meddle(txid: str, data: Mapping[str, Any]) -> None:
        data["added"] = object()  # type: ignore[index]
        data["n"].append((1, 2))

    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", on_prepare=meddle))
    coord.enlist_participant(txid, RecordingParticipant("b"))
    coord.commit_transaction(txid, data={"n": [1]})
    assert coord.state(txid) is TxState.COMMITTED
    assert _logged_data(coord, txid) == {"n": [1]}


# --- other text the coordinator logs ---------------------------------------------------


def test_names_and_reasons_must_be_loggable_text(coord: TransactionCoordinator) -> None:
    txid = coord.begin_transaction()
    with pytest.raises(E.UnencodableDataError, match="participant name is a str that is not"):
        coord.enlist_participant(txid, RecordingParticipant("a"), name="a\udc80")
    with pytest.raises(E.UnencodableDataError, match="participant name is a str that is not"):
        coord.register_participant(txid, "s\ud800", lambda t, d: None, lambda t: None)
    for reason in (5, "why\udc80"):
        with pytest.raises(E.UnencodableDataError, match=r"^reason "):
            coord.rollback_transaction(txid, reason=reason)  # type: ignore[arg-type]
    assert coord.state(txid) is TxState.ACTIVE  # untouched, still open
    coord.rollback_transaction(txid, reason="fine")
    assert coord.transaction(txid).reason == "fine"
    coord.flush()
    stored = log_of(coord).read(txid)
    assert stored is not None
    [decided] = [r for r in stored.records if isinstance(r, Decided)]
    assert (decided.outcome, decided.reason) == (Outcome.ABORT, "fine")


def test_resolve_reason_and_actor_are_checked(coord: TransactionCoordinator) -> None:
    stuck = RecordingParticipant("a", commit_failures=Failures(FOREVER))  # stays in doubt
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, stuck)
    with pytest.raises(E.CommitIncompleteError):
        coord.commit_transaction(txid)
    coord.flush()
    before = log_of(coord).read(txid)
    for kwargs in ({"reason": 7}, {"reason": "ok", "actor": "ops\udc80"}):
        with pytest.raises(E.UnencodableDataError):
            coord.resolve(txid, "commit", **kwargs)  # type: ignore[arg-type]
    coord.flush()
    assert log_of(coord).read(txid) == before  # nothing logged for a refusal


def test_an_error_message_that_is_not_utf8_is_logged_escaped(
    coord: TransactionCoordinator,
) -> None:
    def refuse(txid: str, data: Mapping[str, Any]) -> None:
        raise E.VoteNo("no \udc80 today")

    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", on_prepare=refuse))
    coord.enlist_participant(txid, RecordingParticipant("b"))
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(txid)
    coord.flush()
    view = coord.transaction(txid)
    assert view.state is TxState.ABORTED  # the abort decision and acks were logged
    assert view.reason is not None and "no \\udc80 today" in view.reason
    stored = log_of(coord).read(txid)
    assert stored is not None and stored.finished
    kinds = [type(r) for r in stored.records]
    assert Decided in kinds and kinds[-1] is Ended
    [decided] = [r for r in stored.records if isinstance(r, Decided)]
    assert decided.outcome is Outcome.ABORT and "no \\udc80 today" in (decided.reason or "")
