"""``dtc status``: a log's counts by state, oldest unfinished transaction, in doubt, size.

It opens the log read-only (an LMDB reader) and works while a live coordinator runs.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import click

from ..coordinator import CoordinatorOptions
from ..recovery import InDoubt, in_doubt_of
from ..states import TxState
from .in_doubt import in_doubt_dict, pending_text
from .logs import DAMAGED, lock_holder, open_readonly, summaries, unfinished_views
from .options import json_option, log_argument
from .output import echo_json, format_age, format_bytes

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
    now = time.time()
    with open_readonly(log) as store:
        counts = store.counts()
        by_state = collections.Counter(str(s.get("s")) for _, s in summaries(store))
        views, damaged = unfinished_views(store)
        used, map_size, last_lsn = store.used_bytes(), store.map_size, store.last_lsn
    holder = lock_holder(log)
    file_bytes = (log / "data.mdb").stat().st_size
    pending = in_doubt_of(views, damaged)
    in_doubt = [d for d in pending if not d.awaiting_recovery]
    awaiting = [d for d in pending if d.awaiting_recovery]
    oldest = views[0] if views else None
    ordered_states = {s: by_state[s] for s in [*(t.value for t in TxState), DAMAGED] if by_state[s]}
    if as_json:
        echo_json(
            {
                "log": str(log),
                "live_coordinator": holder,
                "last_lsn": last_lsn,
                "records": counts["records"],
                "transactions": counts["transactions"],
                "by_state": ordered_states,
                "unfinished": counts["unfinished"],
                "oldest_unfinished": None
                if oldest is None
                else {
                    "txid": oldest.txid,
                    "state": oldest.state.value,
                    "created_at": oldest.created_at,
                    "age_seconds": round(now - oldest.created_at, 3),
                },
                "in_doubt": [in_doubt_dict(d) for d in in_doubt],
                "awaiting_recovery": [in_doubt_dict(d) for d in awaiting],
                "file_bytes": file_bytes,
                "used_bytes": used,
                "map_size": map_size,
                "default_max_map_size": DEFAULT_MAX_MAP_SIZE,
            }
        )
        return
    states = ", ".join(f"{n} {s}" for s, n in ordered_states.items())
    lines = [
        ("log", str(log)),
        ("live coordinator", _holder_text(holder)),
        ("last LSN", str(last_lsn)),
        ("records", str(counts["records"])),
        ("transactions", f"{counts['transactions']}" + (f": {states}" if states else "")),
    ]
    unfinished = str(counts["unfinished"])
    if oldest is not None:
        unfinished += (
            f" (oldest: {oldest.txid}, {oldest.state.value}, begun "
            f"{format_age(now - oldest.created_at)} ago)"
        )
    lines.append(("unfinished", unfinished))
    doubt = ""
    if damaged:
        doubt = f", {len(damaged)} damaged transaction(s) left alone by recovery"
    lines.extend(_pending_lines("in doubt", in_doubt, log, doubt))
    hint = " (not tried yet since it was left unfinished: start the coordinator or `dtc recover`)"
    lines.extend(_pending_lines("awaiting recovery", awaiting, log, hint if awaiting else ""))
    lines.append(("size", _size_text(file_bytes, used, map_size)))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")
    if holder and pending:
        click.echo(
            "note: a live coordinator holds this log; unfinished transactions may still be "
            "in progress there"
        )
