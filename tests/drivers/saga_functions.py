"""Module-level saga functions: recovery imports them back by path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CALLS: list[tuple[str, str, dict[str, Any]]] = []


def action(txid: str, data: Mapping[str, Any]) -> None:
    CALLS.append(("action", txid, dict(data)))


def compensate(txid: str, data: Mapping[str, Any]) -> None:
    CALLS.append(("compensate", txid, dict(data)))
