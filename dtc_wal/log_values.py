"""What the log accepts from callers: values it can read back equal, byte for byte.

The rule (docs/protocol.md, "What the log accepts") for ``data`` and ``params``:

* the top level is a mapping (any :class:`~collections.abc.Mapping`; it is copied to a
  plain dict);
* inside it: ``None``, ``bool``, ``int`` in msgpack's range ``-2**63 .. 2**64 - 1``,
  ``float`` (nan and infinities included), ``str`` that encodes as UTF-8 (no lone
  surrogates), ``bytes``, ``list`` and ``dict`` -- subclasses of these too (``IntEnum``,
  ``StrEnum``, ``OrderedDict``): they read back as the plain type, equal to what was given;
* every dict key, at every level, is a ``str`` (JSON-compatible keys);
* at most :data:`MAX_DEPTH` containers deep, counting the top-level mapping as the first;
* at most ``max_data_bytes`` encoded (a coordinator option, default
  :data:`DEFAULT_MAX_DATA_BYTES`; ``None``: no limit but the log's size).

Everything else -- tuples (they read back as lists), sets, ``bytearray``, ``memoryview``,
other mappings nested inside, any other object -- raises
:class:`~dtc_wal.errors.UnencodableDataError` naming the path of the offending value
(``data['items'][3]``) and what to pass instead.

The check walks the value once for the shapes and types, then packs it once; only when
packing fails (an int out of range, a lone surrogate) does a second walk find the path.
The caller keeps the bytes (:class:`~dtc_wal.records.EncodedMap`), so the writer logs
exactly what was checked and never packs it again.
"""

from __future__ import annotations

import reprlib
import threading
from collections.abc import Mapping
from typing import Any

import msgpack

from .errors import DataTooLargeError, InvalidOptionError, UnencodableDataError

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "MAX_DEPTH",
    "check_max_data_bytes",
    "check_text",
    "encode_mapping",
    "loggable_text",
]

MAX_DEPTH = 32
DEFAULT_MAX_DATA_BYTES = 1024 * 1024
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_DOC = 'see docs/protocol.md, "What the log accepts"'

# Exact types taken without a closer look in the first walk; None's type included.
_LEAVES = frozenset({type(None), bool, int, float, str, bytes})
_SCALAR_BASES = (int, float, str, bytes)  # subclasses (enums) read back as the base type
_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


_packers = threading.local()


def pack(obj: Any) -> bytes:
    """msgpack with the options every dtc-wal writer uses (str keys, bin type).

    A Packer per thread: three times faster than ``msgpack.packb``, which builds one per
    call. Str and int enums pack as their plain values.
    """
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True, datetime=False)
    data: bytes = packer.pack(obj)
    return data


def unpack(data: bytes) -> Any:
    """Decode msgpack as every dtc-wal reader does (tolerant of what format 1 may hold).

    Keys need not be str: format-1 logs written before the write-side check
    (docs/protocol.md, "What the log accepts") may hold int, nil or bytes keys inside
    ``data`` and ``params``, and array keys (from tuples) -- those read back as tuples.
    """
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        # An array used as a map key: the slow path, taken only for such old records.
        return msgpack.unpackb(
            data, raw=False, strict_map_key=False, use_list=True, object_pairs_hook=_pairs
        )


def _pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    return {_hashable(k): v for k, v in pairs}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


class EncodedMap(dict[str, Any]):
    """A dict checked by :func:`dtc_wal.log_values.encode_mapping`, carrying its msgpack
    encoding in ``packed``.

    :func:`encode_record` splices ``packed`` into the record instead of packing the dict
    again: the check costs the only encoding, and the log holds exactly what was checked
    even if a participant changes the dict (it receives it as ``data``) meanwhile.
    """

    __slots__ = ("packed",)
    packed: bytes


class _Refused(Exception):
    """One value the log cannot take; ``path`` is filled in innermost first, as it unwinds."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []


def encode_mapping(value: Mapping[str, Any] | None, what: str, max_bytes: int | None) -> EncodedMap:
    """Check ``value`` by the rule and return a plain copy of it carrying its encoding.

    ``what`` names the value in messages (``"data"``, ``"params of 'inventory'"``).
    ``None`` is an empty mapping. Raises :class:`UnencodableDataError` (or its subclass
    :class:`DataTooLargeError` past ``max_bytes``); nothing has been written then.

    >>> checked = encode_mapping({"sku": "A1", "qty": 2}, "data", None)
    >>> checked == {"sku": "A1", "qty": 2}, checked.packed.hex()
    (True, '82a3736b75a24131a371747902')
    >>> encode_mapping({"at": [1, (2, 3)]}, "data", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    dtc_wal.errors.UnencodableDataError: data['at'][1] is a tuple, which the log would read back ...
    """
    if value is None:
        value = {}
    elif not isinstance(value, Mapping):
        raise UnencodableDataError(
            f"{what} must be a mapping with str keys (a dict), not {type(value).__name__}; "
            f"wrap the value in a dict ({_DOC})"
        )
    copy = EncodedMap(value)
    try:
        _walk(copy, 1, False)
        packed = pack(copy)
    except _Refused as exc:
        raise _refusal(what, exc) from None
    except (TypeError, ValueError, OverflowError) as exc:
        try:
            _walk(copy, 1, True)  # find the value msgpack refused, to name it
        except _Refused as refused:
            raise _refusal(what, refused) from exc
        raise UnencodableDataError(f"{what} cannot be encoded for the log ({exc}); {_DOC}") from exc
    if max_bytes is not None and len(packed) > max_bytes:
        raise DataTooLargeError(
            f"{what} is {len(packed):,} bytes encoded, more than max_data_bytes="
            f"{max_bytes:,}; keep large values elsewhere and pass a reference to them, or "
            "open the coordinator with a larger max_data_bytes (None: no limit)",
            size=len(packed),
            limit=max_bytes,
        )
    copy.packed = packed
    return copy


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a str the log can store (UTF-8: no lone surrogates)."""
    if not isinstance(value, str):
        raise UnencodableDataError(f"{what} must be a str, not {type(value).__name__}")
    if not value.isascii():
        try:
            _check_leaf(value)
        except _Refused as exc:
            raise UnencodableDataError(f"{what} {exc.problem}") from None
    return value


def loggable_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode escaped, for text the log must take
    whatever it holds (a participant's error message)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_max_data_bytes(value: object) -> int | None:
    """Validate the coordinator option ``max_data_bytes``: a positive int or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidOptionError(
            f"max_data_bytes must be a positive number of bytes (or None for no limit), "
            f"not {value!r}"
        )
    return value


# -- the walk ---------------------------------------------------------------------------


def _refusal(what: str, exc: _Refused) -> UnencodableDataError:
    where = what + "".join(reversed(exc.path))
    return UnencodableDataError(f"{where} {exc.problem} ({_DOC})")


def _walk(value: object, depth: int, full: bool) -> None:
    """Raise :class:`_Refused` for the first value the log cannot read back equal.

    ``depth`` is the nesting level of ``value`` when it is a container (top level: 1).
    The first walk (``full=False``) leaves int ranges and UTF-8 to msgpack, which refuses
    them while packing; the second (``full=True``) checks them too, to name the value.
    """
    kind = type(value)
    if kind in _LEAVES:
        if full:
            _check_leaf(value)
        return
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            raise _Refused(_too_deep())
        for key, item in dict.items(value):
            if type(key) is not str or (full and not key.isascii()):
                _check_key(key, full)
            if not full and type(item) in _LEAVES:
                continue
            try:
                _walk(item, depth + 1, full)
            except _Refused as exc:
                exc.path.append(f"[{_short.repr(key)}]")
                raise
    elif isinstance(value, list):
        if depth > MAX_DEPTH:
            raise _Refused(_too_deep())
        for index, item in enumerate(value):
            if not full and type(item) in _LEAVES:
                continue
            try:
                _walk(item, depth + 1, full)
            except _Refused as exc:
                exc.path.append(f"[{index}]")
                raise
    elif isinstance(value, _SCALAR_BASES):  # bool is in _LEAVES; this is a subclass
        if full:
            _check_leaf(value)
    else:
        raise _Refused(_why_not(value))


def _check_key(key: object, full: bool) -> None:
    if not isinstance(key, str):
        raise _Refused(
            f"has a key of type {type(key).__name__} ({_safe_repr(key)}); the log takes only "
            "str keys, at every level: convert the key to a str"
        )
    if full:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _Refused(
                f"has a key that is not valid UTF-8 text ({key!r}: {_surrogate(exc)}); pass "
                "valid text"
            ) from None


def _check_leaf(value: object) -> None:
    if isinstance(value, bool | float | bytes) or value is None:
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _Refused(
                f"is the int {_short.repr(value)}, outside the range the log stores "
                "(-2**63 .. 2**64-1); pass it as a str"
            )
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _Refused(
                f"is a str that is not valid UTF-8 text ({_surrogate(exc)}); pass valid "
                "text, or bytes"
            ) from None


def _surrogate(exc: UnicodeEncodeError) -> str:
    bad = exc.object[exc.start : exc.end]
    return f"lone surrogate {bad!r} at index {exc.start}"


def _too_deep() -> str:
    return f"nests more than {MAX_DEPTH} containers deep (the top level counts as one); flatten it"


_INSTEAD: tuple[tuple[tuple[type, ...], str], ...] = (
    ((tuple,), "which the log would read back as a list, not equal to it: pass a list"),
    (
        (set, frozenset),
        "which the log cannot store: pass a list (sorted, if order does not matter)",
    ),
    ((bytearray, memoryview), "which the log cannot store: pass bytes(...)"),
    ((Mapping,), "which the log cannot store nested: pass dict(...)"),
)


def _why_not(value: object) -> str:
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    for types, hint in _INSTEAD:
        if isinstance(value, types):
            return f"is {article} {kind}, {hint}"
    return (
        f"is {article} {kind}, which the log cannot store: pass None, bool, int, float, str, "
        "bytes, or lists and str-keyed dicts of those"
    )


def _safe_repr(value: object) -> str:
    try:
        return _short.repr(value)
    except Exception:  # a key's own __repr__ may fail; its type is named anyway
        return "?"
