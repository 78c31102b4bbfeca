"""``dtc status`` on a format-2 log: the same report as format 1, from ``LogInfo`` and the
folded transactions. Format 2 has no LSNs: ``last_lsn`` is None (``-`` in text)."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import click

from ...protocol import TxState
from ..in_doubt import in_doubt_dict
from ..logs import lock_holder
from ..output import echo_json, format_age
from ..status import DEFAULT_MAX_MAP_SIZE, _holder_text, _pending_lines, _size_text
from .reading import DAMAGED, Entry, entry_of, in_doubt_of, open_readonly

__all__ = ["run_status"]


def run_status(log: Path, as_json: bool) -> None:
    now = time.time()
    with open_readonly(log) as opened:
        info = opened.info()
        by_state = collections.Counter(entry_of(s).state for s in opened.transactions())
        unfinished: list[Entry] = [entry_of(s) for s in opened.unfinished()]
    holder = lock_holder(log)
    pending = [d for e in unfinished for d in in_doubt_of(e)]
    damaged = [e for e in unfinished if e.damage is not None]
    in_doubt = [d for d in pending if not d.awaiting_recovery]
    awaiting = [d for d in pending if d.awaiting_recovery]
    oldest = next((e for e in unfinished if e.tx is not None), None)
    order = [*(t.value for t in TxState), DAMAGED]
    ordered_states = {s: by_state[s] for s in order if by_state[s]}
    oldest_at = oldest.opened_at if oldest is not None else None
    if as_json:
        echo_json(
            {
                "log": str(log),
                "format": info.format,
                "live_coordinator": holder,
                "last_lsn": None,
                "records": info.records,
                "transactions": info.transactions,
                "by_state": ordered_states,
                "unfinished": info.unfinished,
                "oldest_unfinished": None
                if oldest is None or oldest_at is None
                else {
                    "txid": oldest.txid,
                    "state": oldest.state,
                    "created_at": oldest_at,
                    "age_seconds": round(now - oldest_at, 3),
                },
                "in_doubt": [in_doubt_dict(d) for d in in_doubt],
                "awaiting_recovery": [in_doubt_dict(d) for d in awaiting],
                "file_bytes": info.size,
                "used_bytes": info.map_used,
                "map_size": info.map_size,
                "default_max_map_size": DEFAULT_MAX_MAP_SIZE,
            }
        )
        return
    states = ", ".join(f"{n} {s}" for s, n in ordered_states.items())
    lines = [
        ("log", str(log)),
        ("format", str(info.format)),
        ("live coordinator", _holder_text(holder)),
        ("last LSN", "- (format 2 has no LSNs)"),
        ("records", str(info.records)),
        ("transactions", f"{info.transactions}" + (f": {states}" if states else "")),
    ]
    text = str(info.unfinished)
    if oldest is not None and oldest_at is not None:
        text += f" (oldest: {oldest.txid}, {oldest.state}, begun {format_age(now - oldest_at)} ago)"
    lines.append(("unfinished", text))
    doubt = f", {len(damaged)} damaged transaction(s) left alone by recovery" if damaged else ""
    lines.extend(_pending_lines("in doubt", in_doubt, log, doubt))
    hint = " (not tried yet since it was left unfinished: start the coordinator or `dtc recover`)"
    lines.extend(_pending_lines("awaiting recovery", awaiting, log, hint if awaiting else ""))
    lines.append(("size", _size_text(info.size, info.map_used, info.map_size)))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")
    if holder and pending:
        click.echo(
            "note: a live coordinator holds this log; unfinished transactions may still be "
            "in progress there"
        )
