"""``dtc status``: a log's counts by state, oldest unfinished transaction, in doubt, size.

It opens the log read-only (an LMDB reader) and works while a live coordinator runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..coordinator import CoordinatorOptions
from ..recovery import InDoubt
from .in_doubt import pending_text
from .options import json_option, log_argument
from .output import format_bytes

__all__ = ["status"]

_IN_DOUBT_SHOWN = 10
DEFAULT_MAX_MAP_SIZE: int = CoordinatorOptions().max_map_size
"""The coordinator's default ``max_map_size`` (8 GiB): how far its map grows."""


def _holder_text(holder: str | None) -> str:
    return holder if holder else "none (no coordinator holds the log)"


def _size_text(file_bytes: int, used: int, map_size: int) -> str:
    """Use against what the map can grow to: a coordinator doubles its map when it is full,
    up to ``max_map_size``. The CLI cannot see a live coordinator's option: the default."""
    text = f"file {format_bytes(file_bytes)}, used {format_bytes(used)} of a "
    text += f"{format_bytes(map_size)} map"
    if map_size > DEFAULT_MAX_MAP_SIZE:
        return text + (
            f" (larger than the default max_map_size, {format_bytes(DEFAULT_MAX_MAP_SIZE)}: "
            "the coordinator was given a larger one)"
        )
    share = 100 * used / DEFAULT_MAX_MAP_SIZE
    return text + f" that grows to {format_bytes(DEFAULT_MAX_MAP_SIZE)} ({share:.1f}%)"


def _pending_lines(key: str, items: list[InDoubt], log: Path, suffix: str) -> list[tuple[str, str]]:
    participants = [d for d in items if not d.damaged]
    txids = {d.txid for d in participants}
    head = f"{len(participants)} participant(s) in {len(txids)} transaction(s){suffix}"
    lines = [(key, head)]
    lines.extend(("", f"  {pending_text(item)}") for item in items[:_IN_DOUBT_SHOWN])
    if len(items) > _IN_DOUBT_SHOWN:
        more = len(items) - _IN_DOUBT_SHOWN
        lines.append(("", f"  ... {more} more: dtc list {log} --state unfinished"))
    return lines


@click.command()
@log_argument
@json_option
def status(log: Path, as_json: bool) -> None:
    """Summarize a log: counts by state, oldest unfinished transaction, in doubt, size.

    A participant is "in doubt" when recovery tried it and could not finish (or cannot
    rebuild it), "awaiting recovery" when nobody has tried it yet since its transaction
    was left unfinished (right after a crash). Also says whether a live coordinator holds
    the log. Read-only: safe to run while the coordinator is working.

    \b
    Examples:
      dtc status /var/lib/shop/dtc-log
      dtc status /var/lib/shop/dtc-log --json | jq .unfinished
    """
    from .commands.status import run_status

    run_status(log, as_json)
