"""The JSON form of a participant in doubt or awaiting recovery, shared by ``dtc status``
and ``dtc show``."""

from __future__ import annotations

from typing import Any

from ..recovery import InDoubt

__all__ = ["in_doubt_dict", "pending_text"]


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
        "status": item.status,
    }


def pending_text(item: InDoubt, *, txid: bool = True) -> str:
    """One line for a participant under an "in doubt" or "awaiting recovery" heading."""
    if item.damaged:
        return str(item) if txid else str(item).removeprefix(f"{item.txid}: ")
    text = f"{item.txid} " if txid else ""
    text += f"{item.participant}: needs {item.outcome or 'a decision'}, "
    if item.awaiting_recovery:
        return text + "not tried yet"
    return text + f"{item.attempts} attempt(s), last error: {item.error or 'none'}"
