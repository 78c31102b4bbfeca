"""How the CLI prints: JSON (bytes as base64), aligned tables, times, ages and sizes."""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

__all__ = [
    "echo_json",
    "format_age",
    "format_bytes",
    "format_time",
    "json_key",
    "table",
    "to_jsonable",
]


def to_jsonable(value: Any) -> Any:
    """``value`` with bytes as ``{"$base64": "..."}``, enums as their values, tuples as
    lists and non-string map keys as strings, so that ``json.dumps`` takes it."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {json_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


def json_key(key: Any) -> str:
    """A map key as a JSON object key (a string)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "backslashreplace")
    return json.dumps(to_jsonable(key))


def dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(to_jsonable(value), indent=indent, ensure_ascii=False)


def echo_json(value: Any) -> None:
    click.echo(dumps(value, indent=2))


def format_time(ts: float | None) -> str:
    """UTC, ISO 8601, milliseconds: ``2026-11-22T00:57:35.123Z``."""
    if ts is None:
        return "-"
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_age(seconds: float) -> str:
    """A short duration: ``0s``, ``850ms``, ``4.2s``, ``12m30s``, ``2h05m``, ``3d04h``."""
    if seconds < 0:
        return "-" + format_age(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append((indent + "  ".join([*cells, row[-1]])).rstrip())
    return lines
