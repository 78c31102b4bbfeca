"""The JSON form of a participant in doubt, shared by ``dtc status`` and ``dtc show``."""

from __future__ import annotations

from typing import Any

from ..recovery import InDoubt

__all__ = ["in_doubt_dict"]


def in_doubt_dict(item: InDoubt) -> dict[str, Any]:
    return {
        "txid": item.txid,
        "participant": item.participant,
        "outcome": item.outcome,
        "state": item.state,
        "error": item.error,
        "attempts": item.attempts,
        "damaged": item.damaged,
        "lsn": item.lsn,
    }
