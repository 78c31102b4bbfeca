"""``dtc list`` on a format-2 log: the same columns and JSON as format 1, from the folded
transactions (``records`` counts a transaction's format-2 records)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..listing import UNFINISHED_STATES, _wanted_states
from ..logs import lock_holder
from ..output import echo_json, format_age, format_time, table
from .reading import DAMAGED, Entry, entry_of, in_doubt_of, open_readonly

__all__ = ["run_list"]


def _matches(wanted: set[str], entry: Entry) -> bool:
    if not wanted:
        return True
    if entry.state != DAMAGED:
        return entry.state in wanted
    return DAMAGED in wanted or ("finished" if entry.finished else "unfinished") in wanted


def _recovery(entry: Entry) -> str | None:
    if entry.damage is not None:
        return "in doubt"
    if entry.finished:
        return None
    pending = in_doubt_of(entry)
    return "in doubt" if any(not d.awaiting_recovery for d in pending) else "awaiting recovery"


def _participants(entry: Entry) -> dict[str, str]:
    if entry.tx is None:
        return {}
    return {m.name: m.state.value for m in entry.tx.members}


def _row(entry: Entry, now: float) -> dict[str, Any]:
    tx = entry.tx
    created = entry.opened_at
    return {
        "txid": entry.txid,
        "state": entry.state,
        "mode": tx.mode.value if tx is not None else None,
        "created_at": created,
        "updated_at": tx.updated_at if tx is not None else None,
        "age_seconds": round(now - (created or 0.0), 3),
        "records": len(entry.stored.records),
        "participants": _participants(entry),
        "damage": entry.damage,
        "recovery": _recovery(entry),
    }


def run_list(
    log: Path,
    states: tuple[str, ...],
    older_than: float | None,
    limit: int | None,
    as_json: bool,
) -> None:
    now = time.time()
    wanted = _wanted_states(states)
    unfinished_names = {s.value for s in UNFINISHED_STATES} | {"unfinished"}
    only_unfinished = bool(wanted) and wanted <= unfinished_names
    entries: list[Entry] = []
    with open_readonly(log) as opened:
        source = opened.unfinished() if only_unfinished else opened.transactions()
        for stored in source:
            entry = entry_of(stored)
            if not _matches(wanted, entry):
                continue
            if older_than is None or now - (entry.opened_at or 0.0) >= older_than:
                entries.append(entry)
    entries.sort(key=lambda e: (e.opened_at or 0.0, e.txid))
    more = 0
    if limit is not None and len(entries) > limit:
        more, entries = len(entries) - limit, entries[:limit]
    rows = [_row(e, now) for e in entries]
    holder = lock_holder(log)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no matching transactions in {log}", err=True)
        return
    body = [
        [
            r["txid"],
            r["state"],
            r["mode"] or "-",
            format_time(r["created_at"]),
            format_age(r["age_seconds"]),
            r["recovery"] or "-",
            " ".join(f"{n}={s}" for n, s in r["participants"].items()) or "-",
        ]
        for r in rows
    ]
    headers = ["TXID", "STATE", "MODE", "BEGUN", "AGE", "RECOVERY", "PARTICIPANTS"]
    for line in table(headers, body):
        click.echo(line)
    for r in rows:
        if r["damage"]:
            click.echo(f"{r['txid']}: damaged, in doubt and left alone by recovery: {r['damage']}")
    if more:
        click.echo(f"... {more} more (raise --limit to see them)", err=True)
    if holder and any(r["recovery"] for r in rows):
        click.echo(
            "note: a live coordinator holds this log; unfinished transactions may still be "
            "in progress there",
            err=True,
        )
