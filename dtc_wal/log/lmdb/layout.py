"""Log format 2: the array layout of each record's payload (docs/log-format.md).

Each record is one msgpack array, positional: ``[type code, at, fields...]``; enums are
small ints (their position in the tables below: never reorder, only append). The
encoders refuse (:class:`Refuse`) what the decoders would not accept back, so every
record written reads back equal; a decoder raises :class:`Malformed` (or the ValueError or
TypeError of a field that does not unpack) for a payload that is not a valid record, and
:class:`WrongTransaction` for an ``Opened`` naming another txid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...log_values import EncodedMap, encode_mapping
from ...protocol.records import (
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

__all__ = [
    "ACKS",
    "DECODERS",
    "ENCODERS",
    "MODES",
    "OPS",
    "OUTCOMES",
    "TYPE_CODES",
    "VOTES",
    "Malformed",
    "Pack",
    "Refuse",
    "WrongTransaction",
]

Pack = Callable[[Any], bytes]
"""A msgpack packer's ``pack`` (codec.py keeps one per thread)."""

TYPE_CODES: dict[type[Any], int] = {
    Opened: 1,
    StepDone: 2,
    Decided: 3,
    Acked: 4,
    Ended: 5,
    Failed: 6,
    Resolved: 7,
}
# Enum values by their code (the position); never reorder, only append.
MODES = (Mode.TWO_PHASE, Mode.SAGA)
OUTCOMES = (Outcome.COMMIT, Outcome.ABORT)
VOTES = (Vote.YES, Vote.READ_ONLY)
ACKS = (MemberState.COMMITTED, MemberState.ROLLED_BACK, MemberState.SKIPPED)
OPS = (Op.PREPARE, Op.COMMIT, Op.ROLLBACK, Op.COMMIT_ONE_PHASE, Op.ACTION, Op.COMPENSATE)
_MODE = {v: i for i, v in enumerate(MODES)}
_OUTCOME = {v: i for i, v in enumerate(OUTCOMES)}
_VOTE = {v: i for i, v in enumerate(VOTES)}
_ACK = {v: i for i, v in enumerate(ACKS)}
_OP = {v: i for i, v in enumerate(OPS)}


class Refuse(Exception):
    """A field the decoder would not accept back: refused before anything is written."""


# The encoders check what the decoders check (so every record written reads back) with
# inline tests on the common path; an unknown enum value is a KeyError from its table.


def _opt_text(value: object, what: str) -> object:
    if value is None or isinstance(value, str):
        return value
    raise Refuse(f"{what} is a {type(value).__name__}, not a str")


def _text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    raise Refuse(f"{what} is a {type(value).__name__}, not a str")


def _index(value: object, what: str) -> int:
    if type(value) is int and value >= 0:
        return value
    raise Refuse(f"{what} is {value!r}, not an int >= 0")


def _mapping(value: Mapping[str, Any] | None, what: str) -> bytes:
    """The msgpack of ``data`` or ``params``: nil, or a map by the rule of what the log
    accepts (docs/protocol.md), spliced as checked when the caller checked it already."""
    if value is None:
        return b"\xc0"
    if type(value) is EncodedMap:
        return value.packed  # checked by the coordinator: exactly those bytes are logged
    return encode_mapping(value, what, None).packed


def _array_head(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    return b"\xdc" + n.to_bytes(2, "big") if n < 65536 else b"\xdd" + n.to_bytes(4, "big")


def _acks(acks: Sequence[tuple[int, MemberState]]) -> list[list[int]]:
    # The check of _index inline (no call per pair on the common path).
    return [
        [m if type(m) is int and m >= 0 else _index(m, "an acknowledging member"), _ACK[a]]
        for m, a in acks
    ]


def _opened(r: Opened, pack: Pack) -> bytes:
    if r.data is None:
        members = []
        for m in r.members:
            if m.params is not None:
                break  # checked maps to splice: the general path below
            name, factory = m.name, m.factory
            if not isinstance(name, str) or not (factory is None or isinstance(factory, str)):
                raise Refuse(f"member {m!r} needs a str name and a str or None factory")
            members.append([name, factory, None])
        else:
            return pack([1, float(r.at), r.txid, _MODE[r.mode], members, None])
    # Built from parts so checked maps are spliced in; [1:] drops a fixarray header.
    parts = [b"\x96", pack([1, float(r.at), r.txid, _MODE[r.mode]])[1:]]
    parts.append(_array_head(len(r.members)))
    for m in r.members:
        name, factory = m.name, m.factory
        if not isinstance(name, str) or not (factory is None or isinstance(factory, str)):
            raise Refuse(f"member {m!r} needs a str name and a str or None factory")
        params = _mapping(m.params, f"params of {name!r}")
        parts.append(b"\x93" + pack([name, factory])[1:] + params)
    parts.append(_mapping(r.data, "data"))
    return b"".join(parts)


def _step_done(r: StepDone, pack: Pack) -> bytes:
    return pack([2, float(r.at), _index(r.index, "the step index")])


def _decided(r: Decided, pack: Pack) -> bytes:
    return pack(
        [
            3,
            float(r.at),
            _OUTCOME[r.outcome],
            [
                [m if type(m) is int and m >= 0 else _index(m, "a voting member"), _VOTE[v]]
                for m, v in r.votes
            ],
            _opt_text(r.reason, "the reason"),
            _opt_text(r.actor, "the actor"),
        ]
    )


def _acked(r: Acked, pack: Pack) -> bytes:
    return pack([4, float(r.at), _acks(r.acks)])


def _ended(r: Ended, pack: Pack) -> bytes:
    return pack([5, float(r.at), _acks(r.acks)])


def _failed(r: Failed, pack: Pack) -> bytes:
    if not isinstance(r.error, str):
        raise Refuse(f"the error is a {type(r.error).__name__}, not a str")
    return pack(
        [
            6,
            float(r.at),
            _index(r.member, "the member"),
            _OP[r.op],
            r.error,
            _index(r.attempts, "attempts"),
        ]
    )


def _resolved(r: Resolved, pack: Pack) -> bytes:
    if not isinstance(r.actor, str):
        raise Refuse(f"the actor is a {type(r.actor).__name__}, not a str")
    return pack(
        [
            7,
            float(r.at),
            _index(r.member, "the member"),
            _OUTCOME[r.outcome],
            r.actor,
            _text(r.reason, "the reason"),
        ]
    )


ENCODERS: dict[type[Any], Callable[[Any, Pack], bytes]] = {
    Opened: _opened,
    StepDone: _step_done,
    Decided: _decided,
    Acked: _acked,
    Ended: _ended,
    Failed: _failed,
    Resolved: _resolved,
}


def _str(value: Any) -> str:
    if type(value) is not str:
        raise Malformed(f"{value!r} is not a str")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise Malformed(f"{value!r} is not an int >= 0")
    return value


def _time(value: Any) -> float:
    if type(value) is not float:
        raise Malformed(f"time {value!r} is not a float")
    return value


def _opt_map(value: Any) -> dict[Any, Any] | None:
    if value is not None and type(value) is not dict:
        raise Malformed(f"{value!r} is not a map")
    return value


def _enum(table: tuple[Any, ...], value: Any) -> Any:
    if type(value) is not int or not 0 <= value < len(table):
        raise Malformed(f"unknown code {value!r}")
    return table[value]


class Malformed(Exception):
    """A payload that is not a valid record; :func:`.codec.decode` reports it as damage."""


class WrongTransaction(Exception):
    """An Opened record naming another txid than the index that led to it."""


def _dec_acks(value: Any) -> tuple[tuple[int, MemberState], ...]:
    return tuple((_int(m), _enum(ACKS, a)) for m, a in value)


def _fields(body: list[Any], n: int) -> list[Any]:
    if len(body) != n:
        raise Malformed(f"{len(body)} fields, expected {n}")
    return body


def _dec_opened(b: list[Any], txid: str | None) -> Opened:
    _, at, named, mode, members, data = _fields(b, 6)
    if txid is None:
        txid = _str(named)  # a walk without an index: the record names its transaction
    elif named != txid:
        raise WrongTransaction(f"its Opened record names transaction {named!r}")
    specs = tuple(
        MemberSpec(_str(name), _opt_str(factory), _opt_map(params))
        for name, factory, params in members
    )
    return Opened(txid, _time(at), _enum(MODES, mode), specs, _opt_map(data))


def _dec_step_done(b: list[Any], txid: Any) -> StepDone:
    _, at, index = _fields(b, 3)
    return StepDone(txid, _time(at), _int(index))


def _dec_decided(b: list[Any], txid: Any) -> Decided:
    _, at, outcome, votes, reason, actor = _fields(b, 6)
    return Decided(
        txid,
        _time(at),
        _enum(OUTCOMES, outcome),
        tuple((_int(m), _enum(VOTES, v)) for m, v in votes),
        _opt_str(reason),
        _opt_str(actor),
    )


def _dec_acked(b: list[Any], txid: Any) -> Acked:
    _, at, acks = _fields(b, 3)
    return Acked(txid, _time(at), _dec_acks(acks))


def _dec_ended(b: list[Any], txid: Any) -> Ended:
    _, at, acks = _fields(b, 3)
    return Ended(txid, _time(at), _dec_acks(acks))


def _dec_failed(b: list[Any], txid: Any) -> Failed:
    _, at, member, op, error, attempts = _fields(b, 6)
    return Failed(txid, _time(at), _int(member), _enum(OPS, op), _str(error), _int(attempts))


def _dec_resolved(b: list[Any], txid: Any) -> Resolved:
    _, at, member, outcome, actor, reason = _fields(b, 6)
    return Resolved(
        txid, _time(at), _int(member), _enum(OUTCOMES, outcome), _str(actor), _str(reason)
    )


DECODERS: dict[int, Callable[[list[Any], Any], Record]] = {
    1: _dec_opened,
    2: _dec_step_done,
    3: _dec_decided,
    4: _dec_acked,
    5: _dec_ended,
    6: _dec_failed,
    7: _dec_resolved,
}
