"""Log format 2, byte-exact: keys, framing and record payloads (docs/log-format.md).

The one module that both the writer (:mod:`.writer`) and every reader import; keep it and
the document in step (a test checks the document's worked example against this code).

A framed record value::

    offset  size  field
    0       1     version, VERSION (2)
    1       4     payload length n, unsigned big-endian
    5       4     CRC-32 (zlib) of the record's key, then bytes 0..4, then the payload
    9       n     payload: one msgpack array, [type code, at, fields...]

The CRC covers the key, so a record read under any other key fails its checksum: the
payload itself does not repeat the transaction (only ``Opened`` names its txid).
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Sequence
from typing import Any

import msgpack

from ...errors import InvalidTransactionIdError, RecordDamagedError, UnencodableDataError
from ...protocol.records import Record
from ..interface import Damage
from .layout import DECODERS, ENCODERS, TYPE_CODES, Malformed, Refuse, WrongTransaction

__all__ = [
    "FORMAT",
    "HEADER",
    "MAX_TXID_BYTES",
    "RECORD_KEY",
    "TN",
    "VERSION",
    "EncodedRecord",
    "decode",
    "encode",
    "frame",
    "txid_key",
    "unframe",
]

FORMAT = 2
"""``meta/format`` of a format-2 log."""
VERSION = 2
"""The version byte of every format-2 record value."""
HEADER = struct.Struct(">BII")  # version, payload length, CRC-32
_HEAD = struct.Struct(">BI")
_CRC = struct.Struct(">I")
TN = struct.Struct(">Q")
"""A transaction number: 8 bytes big-endian, from 1, in the order transactions opened."""
RECORD_KEY = struct.Struct(">QI")
"""``records`` key: transaction number, then the record's sequence in it (from 0)."""
MAX_TXID_BYTES = 511
"""LMDB's key limit: a txid is a key of the ``txns`` table."""

EncodedRecord = tuple[str, bytes, int, float, bytes]
"""What the writer needs of one record: txid, txid key, type code, at, payload."""

_HELP = (
    "; the transaction is set aside (in doubt) and the rest of the log reads normally -- "
    'settle its participants by hand (docs/log-format.md, "Damaged records")'
)


def txid_key(txid: object) -> bytes:
    """The ``txns`` key of ``txid``, or InvalidTransactionIdError saying why it has none."""
    if not isinstance(txid, str):
        raise InvalidTransactionIdError(
            f"a transaction id is a str, not {type(txid).__name__}: pass the id the "
            "coordinator returned"
        )
    try:
        key = txid.encode()
    except UnicodeEncodeError as exc:
        raise InvalidTransactionIdError(
            f"transaction id {txid!r} cannot be stored: it is not encodable as UTF-8 "
            f"({exc.reason}); use ids of plain text, such as the coordinator's UUIDs"
        ) from exc
    if not key or len(key) > MAX_TXID_BYTES:
        raise InvalidTransactionIdError(
            f"transaction id {txid[:40]!r}{'...' if len(txid) > 40 else ''} cannot be "
            f"stored: it is {len(key)} bytes in UTF-8, and the log keys transactions by id "
            f"with 1 to {MAX_TXID_BYTES} bytes; use a shorter id, such as a UUID"
        )
    return key


# -- encoding -------------------------------------------------------------------------------

_packers = threading.local()


def _packer() -> Any:
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True, datetime=False)
    return packer


def encode(records: Sequence[Record]) -> list[EncodedRecord]:
    """Encode ``records`` (payloads, not yet framed), refusing any the log cannot store.

    Raises InvalidTransactionIdError or UnencodableDataError naming the record; nothing
    is queued then. Runs in the appending thread, so the batch leader only frames and puts.
    """
    out: list[EncodedRecord] = []
    pack = _packer().pack
    last_txid: str | None = None
    key = b""
    for record in records:
        code = TYPE_CODES.get(type(record))
        if code is None:
            raise UnencodableDataError(
                f"{type(record).__name__} is not a format-2 log record: append values of "
                "dtc_wal.protocol.records"
            )
        txid = record.txid
        if txid is not last_txid:
            key = txid_key(txid)
            last_txid = txid
        try:
            at = float(record.at)
            payload = ENCODERS[type(record)](record, pack)
        except UnencodableDataError as exc:  # data or params, with the offending path
            raise UnencodableDataError(
                f"{type(record).__name__} record of transaction {txid}: {exc}"
            ) from exc
        except (Refuse, KeyError, TypeError, ValueError, OverflowError) as exc:
            # msgpack's Packer resets its buffer on an error, so the next pack is clean.
            detail = f"unknown value {exc.args[0]!r}" if isinstance(exc, KeyError) else exc
            raise UnencodableDataError(
                f"{type(record).__name__} record of transaction {txid} cannot be written to "
                f"the log ({detail}); pass str for text, ints >= 0 for positions and counts, "
                "the enums of dtc_wal.protocol.records, and data and params the log accepts "
                '(docs/protocol.md, "What the log accepts")'
            ) from exc
        out.append((txid, key, code, at, payload))
    return out


def frame(key: bytes, payload: bytes) -> bytes:
    """The stored value of ``payload`` under ``key`` (version, length, CRC, payload)."""
    head = _HEAD.pack(VERSION, len(payload))
    return head + _CRC.pack(zlib.crc32(payload, zlib.crc32(head, zlib.crc32(key)))) + payload


# -- decoding -------------------------------------------------------------------------------


def _damaged(txid: str, seq: int, damage: Damage, problem: str) -> RecordDamagedError:
    return RecordDamagedError(
        f"record {seq} of transaction {txid} {problem}{_HELP}", txid, seq, damage
    )


def unframe(key: bytes, value: bytes, txid: str, seq: int) -> bytes:
    """Check a stored value and return its payload, or raise RecordDamagedError.

    The checks run in this order, one damage each: truncated, unknown version, bad
    length, bad checksum (docs/log-format.md).
    """
    if len(value) < HEADER.size:
        raise _damaged(
            txid,
            seq,
            Damage.TRUNCATED,
            f"is truncated: {len(value)} bytes, shorter than the {HEADER.size}-byte header",
        )
    version, length, crc = HEADER.unpack_from(value)
    if version != VERSION:
        raise _damaged(
            txid,
            seq,
            Damage.UNKNOWN_VERSION,
            f"has version {version}; this build reads version {VERSION} (a newer dtc-wal "
            "wrote it, or the byte is damaged)",
        )
    if len(value) - HEADER.size != length:
        raise _damaged(
            txid,
            seq,
            Damage.BAD_LENGTH,
            f"has a bad length: the header says {length} payload bytes, "
            f"{len(value) - HEADER.size} are stored",
        )
    payload = value[HEADER.size :]
    actual = zlib.crc32(payload, zlib.crc32(value[:5], zlib.crc32(key)))
    if actual != crc:
        raise _damaged(
            txid,
            seq,
            Damage.BAD_CHECKSUM,
            f"fails its checksum (stored {crc:#010x}, computed {actual:#010x})",
        )
    return payload


def decode(key: bytes, value: bytes, txid: str | None, seq: int) -> Record:
    """The record stored as ``value`` under ``key``, or RecordDamagedError.

    ``txid`` is the transaction the key belongs to (from the index); an ``Opened`` naming
    another one is index damage. None (a walk of the records without the index) takes an
    ``Opened`` record's own txid; other records then need a txid.
    """
    where = txid or "(unknown)"
    payload = unframe(key, value, where, seq)
    try:
        body = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
        if type(body) is not list or not body:
            raise Malformed("the payload is not a non-empty array")
        decoder = DECODERS.get(body[0])
        if decoder is None:
            raise Malformed(f"unknown record type {body[0]!r}")
        if txid is None and body[0] != 1:
            raise WrongTransaction("without an index, only an Opened record names its txid")
        return decoder(body, txid)
    except WrongTransaction as exc:
        raise _damaged(where, seq, Damage.INDEX, f"is not this transaction's: {exc}") from exc
    except (Malformed, ValueError, TypeError, msgpack.UnpackException) as exc:
        raise _damaged(
            where, seq, Damage.BAD_PAYLOAD, f"passes its checksum but is not a valid record ({exc})"
        ) from exc
