"""Whatever the API accepts, a format-2 log reads back equal, byte for byte; the rest is
refused before anything is sent or logged (dtc_wal/log_values.py, docs/protocol.md "What
the log accepts").

One real log per test, many transactions: arbitrary nested Python values go in as commit
``data`` (2PC, one-phase, saga, ``wait=False``) and as ``params`` (2PC and saga factories);
after a close and a reopen, every accepted value is read back from the log (its ``Opened``
record, through ``LmdbLog.read``) and compared. An independent model of the rule
(:func:`allowed`) says which values must be refused.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import pytest
from helpers import Journal, RecordingParticipant, RecordingStep
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtc_wal import ParticipantRegistry, TransactionCoordinator
from dtc_wal.errors import DataTooLargeError, UnencodableDataError, UnknownTransactionError
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log_values import MAX_DEPTH
from dtc_wal.protocol.records import Opened


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, datetime=False)  # type: ignore[no-any-return]


def log_of(coord: TransactionCoordinator) -> LmdbLog:
    assert isinstance(coord.log, LmdbLog), "a format-2 coordinator"  # type: ignore[attr-defined]
    return coord.log  # type: ignore[attr-defined,no-any-return]


LIMIT = 300  # max_data_bytes of the test's coordinator: some values are too large
JOURNAL = Journal()


class Color(enum.IntEnum):
    RED = 1


class Shade(enum.StrEnum):
    DARK = "dark"


class Plain(enum.Enum):
    X = 1


class OnePhase(RecordingParticipant):
    def commit_one_phase(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.journal.add(self.name, "one-phase", transaction_id)


# -- the values -------------------------------------------------------------------------

_INT_EDGES = [-(2**63), -(2**63) - 1, 2**64 - 1, 2**64]
_ints = st.integers(-(2**66), 2**66) | st.sampled_from(_INT_EDGES)
_text = st.text(st.characters() | st.sampled_from(["\ud800", "\udc80", "\udfff"]), max_size=6)
_scalars = (
    st.none()
    | st.booleans()
    | _ints
    | st.floats()  # nan, infinities, -0.0 included
    | _text
    | st.binary(max_size=120)
    | st.sampled_from([Color.RED, Shade.DARK, Plain.X])
)
_keys = st.one_of(
    st.text(max_size=6),
    _text,
    st.none(),
    st.booleans(),
    _ints,
    st.floats(),
    st.binary(max_size=4),
    st.tuples(st.text(max_size=2), st.integers()),
    st.just(Shade.DARK),
)
_leaves = _scalars | st.binary(max_size=4).map(bytearray) | st.just(object())
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_keys, inner, max_size=4)
        | st.tuples(inner)
        | st.frozensets(st.integers() | st.text(max_size=3), max_size=3)
        | st.sets(st.integers(), max_size=3)
    ),
    max_leaves=20,
)


def _nest(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


_deep = st.integers(MAX_DEPTH - 3, MAX_DEPTH + 2).map(_nest)  # around the depth limit
# Values inside the rule, so that about half the examples are accepted.
_good = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=120)
    | st.sampled_from([Color.RED, Shade.DARK]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)
_top = st.one_of(
    st.dictionaries(st.text(max_size=6), _good, max_size=5),
    st.dictionaries(st.text(max_size=6) | st.just(Shade.DARK), _good | _deep, max_size=5),
    st.dictionaries(_keys, _values | _deep, max_size=5),
    _values,  # not always a mapping
)


# -- the rule, modelled independently ---------------------------------------------------------


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _ok(value: Any, depth: int) -> bool:
    if value is None or isinstance(value, bool | float | bytes):
        return True
    if isinstance(value, int):
        return -(2**63) <= value <= 2**64 - 1
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, list):
        return depth <= MAX_DEPTH and all(_ok(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return depth <= MAX_DEPTH and all(
            isinstance(k, str) and _utf8(k) and _ok(v, depth + 1) for k, v in value.items()
        )
    return False


def allowed(value: Any) -> str:
    """``"ok"``, ``"refused"`` or ``"too large"`` for a top-level value."""
    if value is None:
        return "ok"
    if not isinstance(value, Mapping) or not _ok(dict(value), 1):
        return "refused"
    return "too large" if len(pack(dict(value))) > LIMIT else "ok"


def same(given_value: Any, read: Any) -> bool:
    """Equal, and of the plain types the log reads back (nan equals nan here)."""
    if isinstance(given_value, float):
        if math.isnan(given_value):
            return type(read) is float and math.isnan(read)
        return type(read) is float and read == given_value
    if isinstance(given_value, bool):
        return type(read) is bool and read == given_value
    if isinstance(given_value, int):
        return type(read) is int and read == given_value
    if isinstance(given_value, str):
        return type(read) is str and read == given_value
    if isinstance(given_value, bytes):
        return type(read) is bytes and read == given_value
    if isinstance(given_value, list):
        return (
            type(read) is list
            and len(read) == len(given_value)
            and all(same(a, b) for a, b in zip(given_value, read, strict=True))
        )
    if isinstance(given_value, dict):
        return (
            type(read) is dict
            and len(read) == len(given_value)
            and all(
                type(kb) is str and ka == kb and same(va, vb)
                for (ka, va), (kb, vb) in zip(given_value.items(), read.items(), strict=True)
            )
        )
    return given_value is None and read is None


# -- the test -------------------------------------------------------------------------------

MODES = ["2pc", "one-phase", "saga", "no-wait", "params-2pc", "params-saga"]


def _open(log: Path) -> TransactionCoordinator:
    registry = ParticipantRegistry()
    registry.register("thing", lambda **params: RecordingParticipant("thing"))
    registry.register("step", lambda **params: RecordingStep("step", JOURNAL))
    return TransactionCoordinator(
        log, registry=registry, recovery_interval=None, max_data_bytes=LIMIT
    )


def _try(coord: TransactionCoordinator, mode: str, value: Any) -> tuple[str, str]:
    """Run one transaction with ``value``; return (txid, what the coordinator said)."""
    txid = coord.begin_transaction()
    participant = (OnePhase if mode == "one-phase" else RecordingParticipant)("p", JOURNAL)
    try:
        if mode == "params-2pc":
            coord.enlist_participant(txid, "thing", params=value)
        elif mode == "params-saga":
            coord.register_participant(txid, "step", params=value)
        elif mode == "saga":
            coord.register_participant(txid, "s", saga_action, saga_compensation)
        else:
            coord.enlist_participant(txid, participant)
        data = None if mode.startswith("params") else value
        if mode == "no-wait":
            coord.commit_transaction(txid, data, wait=False).wait()
        else:
            coord.commit_transaction(txid, data)
    except DataTooLargeError:
        return txid, "too large"
    except UnencodableDataError:
        return txid, "refused"
    return txid, "ok"


def saga_action(txid: str, data: Mapping[str, Any]) -> None:
    JOURNAL.add("s", "action", txid)


def saga_compensation(txid: str) -> None:
    JOURNAL.add("s", "compensate", txid)


@pytest.mark.filterwarnings("ignore::UserWarning")  # a test module's steps: not recoverable
def test_any_value_round_trips_through_the_log_or_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "log"
    coord = _open(log)
    accepted: list[tuple[str, str, Any]] = []
    refused: list[str] = []

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(value=_top, mode=st.sampled_from(MODES))
    def run(value: Any, mode: str) -> None:
        expected = allowed(value)
        txid, said = _try(coord, mode, value)
        assert said == expected, (mode, value)
        if said == "ok":
            accepted.append((txid, mode, value))
            return
        # Refused before anything was sent or logged.
        assert JOURNAL.of(txid) == []
        coord.flush()
        assert log_of(coord).read(txid) is None
        refused.append(txid)

    try:
        run()
    finally:
        coord.close()
    assert accepted and refused  # both sides of the rule were exercised

    with _open(log) as reopened:
        for txid, mode, value in accepted:
            given_value = dict(value or {})
            stored = log_of(reopened).read(txid)
            assert stored is not None and stored.damage is None and stored.finished
            opened = stored.records[0]
            assert isinstance(opened, Opened)  # format 2 keeps data and params in it
            if mode.startswith("params"):
                (member,) = opened.members
                read = dict(member.params or {})
                view = reopened.transaction(txid).participants[member.name]
                assert same(given_value, view.params), (mode, value, view.params)
            else:
                read = opened.data if opened.data is not None else {}
            assert same(given_value, read), (mode, value, read)
            assert pack(read) == pack(given_value)  # byte for byte
        for txid in refused:
            with pytest.raises(UnknownTransactionError):
                reopened.transaction(txid)
