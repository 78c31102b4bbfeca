"""Byte-exact record framing and encoding: the one module writer and reader both import.

docs/log-format.md is the specification; keep the two in step.

A framed value is::

    offset  size  field
    0       1     format version (FORMAT_VERSION)
    1       4     payload length, unsigned big-endian
    5       4     CRC-32 (zlib) of bytes 0..4 followed by the payload, unsigned big-endian
    9       n     payload: one msgpack map

Record keys are 8-byte big-endian log sequence numbers (LSN), so LMDB's byte order is log
order and ``append=True`` is always valid.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import msgpack

from ..errors import LogCorruptError, UnencodableDataError, UnsupportedFormatError
from ..log_values import EncodedMap, pack, unpack
from .vocabulary import Mode, Outcome, RecordType

__all__ = [
    "FORMAT_VERSION",
    "HEADER",
    "EncodedMap",
    "LogRecord",
    "decode_record",
    "encode_record",
    "frame",
    "key_lsn",
    "lsn_key",
    "pack",
    "unframe",
    "unpack",
]

FORMAT_VERSION = 1
HEADER = struct.Struct(">BII")  # version, payload length, crc32
LSN = struct.Struct(">Q")

# Short map keys of the record payload. Never reuse a key for another meaning.
_K_TYPE = "k"
_FIELDS: tuple[tuple[str, str], ...] = (
    ("txid", "x"),
    ("at", "t"),
    ("participant", "p"),
    ("factory", "f"),
    ("params", "a"),
    ("order", "n"),
    ("mode", "m"),
    ("outcome", "o"),
    ("reason", "r"),
    ("data", "d"),
    ("error", "e"),
    ("attempts", "c"),
    ("actor", "w"),
)
_BY_SHORT = {short: name for name, short in _FIELDS}
# Decoded fields must have these types; txid, at, mode and outcome are checked apart.
_FIELD_TYPES: dict[str, type] = {
    "participant": str,
    "factory": str,
    "params": dict,
    "order": int,
    "reason": str,
    "error": str,
    "attempts": int,
    "actor": str,
}


def lsn_key(lsn: int) -> bytes:
    return LSN.pack(lsn)


def key_lsn(key: bytes) -> int:
    value: int = LSN.unpack(key)[0]
    return value


_HEAD = struct.Struct(">BI")
_CRC = struct.Struct(">I")


def frame(payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    head = _HEAD.pack(version, len(payload))
    return b"".join((head, _CRC.pack(zlib.crc32(payload, zlib.crc32(head))), payload))


def unframe(value: bytes, lsn: int | None = None, what: str = "record") -> bytes:
    """Check a framed value and return its payload, or raise naming the damage."""
    where = f"{what} at LSN {lsn}" if lsn is not None else what
    if len(value) < HEADER.size:
        raise LogCorruptError(
            f"{where} is truncated: {len(value)} bytes, shorter than the {HEADER.size}-byte "
            "header; run `dtc verify` and see docs/recovery.md (repair)",
            lsn,
        )
    version, length, crc = HEADER.unpack_from(value)
    if version != FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"{where} has format version {version}; this build reads version "
            f"{FORMAT_VERSION}: upgrade dtc-wal or check the log was not damaged",
            lsn,
        )
    payload = value[HEADER.size :]
    if len(payload) != length:
        raise LogCorruptError(
            f"{where} has a bad length: header says {length} payload bytes, found "
            f"{len(payload)} (truncated or damaged); run `dtc verify`",
            lsn,
        )
    actual = zlib.crc32(payload, zlib.crc32(value[:5]))
    if actual != crc:
        raise LogCorruptError(
            f"{where} fails its checksum (stored {crc:#010x}, computed {actual:#010x}); "
            "run `dtc verify` and see docs/recovery.md (repair)",
            lsn,
        )
    return payload


@dataclasses.dataclass(frozen=True, slots=True)
class LogRecord:
    """One state transition. Fields that a record type does not use are None."""

    type: RecordType
    txid: str
    at: float
    participant: str | None = None
    factory: str | None = None
    params: Mapping[str, Any] | None = None
    order: int | None = None
    mode: Mode | None = None
    outcome: Outcome | None = None
    reason: str | None = None
    data: Any = None
    error: str | None = None
    attempts: int | None = None
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A readable dict (long field names, enums as strings) for export and display."""
        out: dict[str, Any] = {"type": self.type.name.lower().replace("_", "-")}
        for name, _short in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value if isinstance(value, Mode | Outcome) else value
        return out


_SHORTS = tuple(short for _, short in _FIELDS)
_K_DATA = dict(_FIELDS)["data"]
_PACKED_K_DATA = pack(_K_DATA)
_VALUES = operator.attrgetter(*(name for name, _ in _FIELDS))  # one C call for all fields


def encode_record(record: LogRecord) -> bytes:
    # Enums need no conversion: msgpack packs IntEnum/StrEnum members as int/str.
    body: dict[str, Any] = {_K_TYPE: record.type}
    body.update(
        {short: v for short, v in zip(_SHORTS, _VALUES(record), strict=True) if v is not None}
    )
    try:
        data = record.data
        payload = _pack_with(body, data) if type(data) is EncodedMap else pack(body)
    except (TypeError, ValueError, OverflowError) as exc:
        # A DtcError, so the group-commit writer refuses this record's append alone.
        raise UnencodableDataError(
            f"{record.type.name} record of transaction {record.txid} cannot be written to "
            f"the log ({exc}); pass only None, bool, int, float, str, bytes, lists and "
            'str-keyed dicts of those (docs/protocol.md, "What the log accepts")'
        ) from exc
    return frame(payload)


def _pack_with(body: dict[str, Any], data: EncodedMap) -> bytes:
    """``pack(body)`` with ``data``'s bytes put in as field ``d``, not packed again.

    ``d`` goes last (a decided-commit record has no field after it anyway, so the bytes
    equal ``pack(body)``). Invariant: a body has at most 14 keys (the type and 13 fields),
    so it packs as a fixmap: one header byte, 0x80 | count, then the pairs.
    """
    del body[_K_DATA]
    head = pack(body)
    return b"".join((bytes((head[0] + 1,)), head[1:], _PACKED_K_DATA, data.packed))


def decode_record(value: bytes, lsn: int | None = None) -> LogRecord:
    payload = unframe(value, lsn)
    try:
        return _decode_payload(payload)
    except _BadPayload as exc:
        where = f"record at LSN {lsn}" if lsn is not None else "record"
        raise LogCorruptError(
            f"{where} passes its checksum but is not a valid record of format {FORMAT_VERSION}: "
            f"{exc}; run `dtc verify` and see docs/recovery.md (repair)",
            lsn,
        ) from exc.__cause__


class _BadPayload(Exception):
    """What is wrong with a payload that passed its checksum."""


def _decode_payload(payload: bytes) -> LogRecord:
    try:
        body = unpack(payload)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise _BadPayload(f"its payload is not msgpack ({detail})") from exc
    if not isinstance(body, dict):
        raise _BadPayload(f"its payload is a msgpack {type(body).__name__}, not a map")
    unknown = [k for k in body if k != _K_TYPE and k not in _BY_SHORT]
    if unknown:
        raise _BadPayload(f"it has an unknown field {unknown[0]!r}")
    kwargs: dict[str, Any] = {_BY_SHORT[k]: v for k, v in body.items() if k != _K_TYPE}
    if _K_TYPE not in body:
        raise _BadPayload("it has no record type (field 'k')")
    try:
        kwargs["type"] = RecordType(body[_K_TYPE])
    except (ValueError, TypeError):
        raise _BadPayload(f"its record type {body[_K_TYPE]!r} is unknown") from None
    for name, kind in (("mode", Mode), ("outcome", Outcome)):
        if name in kwargs:
            try:
                kwargs[name] = kind(kwargs[name])
            except (ValueError, TypeError):
                raise _BadPayload(f"its {name} {kwargs[name]!r} is unknown") from None
    if not isinstance(kwargs.get("txid"), str):
        raise _BadPayload(_wrong("txid", kwargs.get("txid"), "str"))
    if not isinstance(kwargs.get("at"), int | float):
        raise _BadPayload(_wrong("at", kwargs.get("at"), "number"))
    for name, expected in _FIELD_TYPES.items():
        if name in kwargs and not isinstance(kwargs[name], expected):
            raise _BadPayload(_wrong(name, kwargs[name], expected.__name__))
    return LogRecord(**kwargs)


def _wrong(name: str, value: object, expected: str) -> str:
    if value is None:
        return f"field {name} is missing"
    return f"field {name} is {_a(type(value).__name__)}, not {_a(expected)}"


def _a(noun: str) -> str:
    noun = {"dict": "map"}.get(noun, noun)
    return f"{'an' if noun[:1] in tuple('aeiou') else 'a'} {noun}"
