"""Big values shortened for a terminal: ``dtc show`` prints data, params and errors this way
unless ``--full``.

A string keeps its first :data:`MAX_CHARS` characters, bytes their first :data:`MAX_BYTES`,
a list or map its first :data:`MAX_ITEMS` entries (a map in key order, as printed), and
nesting stops at :data:`MAX_DEPTH`; each cut says what it left out (``...[+N chars]``,
``...[+N items]``, ``...[+N bytes]``). The printed value is then cut at :data:`MAX_TEXT`
characters.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from .output import json_key, to_jsonable

__all__ = ["MAX_BYTES", "MAX_CHARS", "MAX_DEPTH", "MAX_ITEMS", "MAX_TEXT", "value_text"]

MAX_CHARS = 200
MAX_BYTES = 96
MAX_ITEMS = 20
MAX_DEPTH = 6
MAX_TEXT = 2000


class _Abridger:
    def __init__(self) -> None:
        self.cut = False

    def value(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            if len(value) <= MAX_CHARS:
                return value
            self.cut = True
            return f"{value[:MAX_CHARS]}...[+{len(value) - MAX_CHARS} chars]"
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            if len(raw) <= MAX_BYTES:
                return to_jsonable(raw)
            self.cut = True
            head = base64.b64encode(raw[:MAX_BYTES]).decode("ascii")
            return {"$base64": f"{head}...[+{len(raw) - MAX_BYTES} bytes]"}
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, list | tuple | set | frozenset):
            return self._sequence(list(value), depth)
        return to_jsonable(value)

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        if depth >= MAX_DEPTH and value:
            self.cut = True
            return f"...[a map of {len(value)} item(s)]"
        items = sorted(((json_key(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        out = {k: self.value(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            self.cut = True
            out["..."] = f"[+{len(items) - MAX_ITEMS} items]"
        return out

    def _sequence(self, value: list[Any], depth: int) -> Any:
        if depth >= MAX_DEPTH and value:
            self.cut = True
            return f"...[a list of {len(value)} item(s)]"
        out = [self.value(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            self.cut = True
            out.append(f"...[+{len(value) - MAX_ITEMS} items]")
        return out


def value_text(value: Any, *, full: bool = False) -> tuple[str, bool]:
    """``value`` as printed after ``name=``, and whether anything was left out.

    A string without spaces, quotes or ``=`` is printed bare; anything else as JSON (bytes
    as ``{"$base64": ...}``, map keys sorted).
    """
    abridger = _Abridger()
    shown = to_jsonable(value) if full else abridger.value(value)
    if isinstance(shown, str):
        plain = shown and not any(c.isspace() or c in '="' for c in shown)
        text = shown if plain else json.dumps(shown, ensure_ascii=False)
    else:  # abridged maps are in key order already, with "..." last
        text = json.dumps(shown, ensure_ascii=False, sort_keys=full)
    if not full and len(text) > MAX_TEXT:
        abridger.cut = True
        text = f"{text[:MAX_TEXT]}...[+{len(text) - MAX_TEXT} chars]"
    return text, abridger.cut
