"""``dtc list``: transactions oldest first, filtered by state and age.

It opens the log read-only (an LMDB reader) and works while a live coordinator runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..history import TransactionView
from ..recovery import in_doubt_of
from ..states import TxState
from .durations import DURATION
from .logs import DAMAGED, lock_holder, open_readonly, summaries, unfinished_views
from .options import json_option, log_argument
from .output import echo_json, format_age, format_time, table

__all__ = ["list_transactions"]

UNFINISHED_STATES = (TxState.ACTIVE, TxState.DECIDED_COMMIT, TxState.DECIDED_ABORT)
FINISHED_STATES = (TxState.COMMITTED, TxState.ABORTED)
STATE_CHOICES = [s.value for s in TxState] + ["unfinished", "finished", DAMAGED]


def _matches(wanted: set[str], summary: dict[str, Any], unfinished: bool) -> bool:
    """A damaged transaction's state is unknown: it matches ``damaged`` and, by the index
    it is in, ``unfinished`` or ``finished``."""
    if not wanted:
        return True
    if summary.get("s") != DAMAGED:
        return summary.get("s") in wanted
    return DAMAGED in wanted or ("unfinished" if unfinished else "finished") in wanted


def _wanted_states(states: tuple[str, ...]) -> set[str]:
    wanted: set[str] = set(states) & {"unfinished", "finished", DAMAGED}
    for state in states:
        if state == "unfinished":
            wanted.update(s.value for s in UNFINISHED_STATES)
        elif state == "finished":
            wanted.update(s.value for s in FINISHED_STATES)
        else:
            wanted.add(state)
    return wanted


def _recovery(txid: str, views: dict[str, TransactionView], damaged: set[str]) -> str | None:
    """For an unfinished transaction: "in doubt" when a participant was tried and could
    not finish, cannot be rebuilt, or the transaction is damaged; else "awaiting
    recovery". None when finished."""
    if txid in damaged:
        return "in doubt"
    view = views.get(txid)
    if view is None or view.state.finished:
        return None
    pending = in_doubt_of([view])
    return "in doubt" if any(not d.awaiting_recovery for d in pending) else "awaiting recovery"


def _participants_text(parts: Any) -> str:
    if not isinstance(parts, dict) or not parts:
        return "-"
    return " ".join(f"{name}={state}" for name, state in parts.items())


@click.command("list")
@log_argument
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATE_CHOICES),
    help="Only transactions in this state; repeat for several. 'unfinished' means active, "
    "decided-commit or decided-abort; 'finished' means committed or aborted; 'damaged' means "
    "records or index entry unreadable (in doubt, left alone by recovery).",
)
@click.option(
    "--older-than",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="Only transactions begun more than this long ago: 30s, 10m, 2h, 3d, 1w, 1h30m.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Print at most N transactions (the oldest).",
)
@json_option
def list_transactions(
    log: Path,
    states: tuple[str, ...],
    older_than: float | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List transactions, oldest first: one line per transaction.

    Columns: transaction id, state, mode (2pc or saga), when it began, its age, where an
    unfinished one stands with recovery ("awaiting recovery": not tried since it was left
    unfinished; "in doubt": tried and could not finish, a participant cannot be rebuilt,
    or the transaction is damaged; see `dtc show`), and each participant's state. An
    unfinished transaction whose records cannot be read back is listed as damaged, with
    the damage below the table.

    \b
    Examples:
      dtc list /var/lib/shop/dtc-log --state unfinished
      dtc list /var/lib/shop/dtc-log --state decided-commit --older-than 10m
      dtc list /var/lib/shop/dtc-log --state aborted --limit 20 --json
    """
    now = time.time()
    wanted = _wanted_states(states)
    unfinished_names = {s.value for s in UNFINISHED_STATES} | {"unfinished"}
    only_unfinished = bool(wanted) and wanted <= unfinished_names
    rows: list[tuple[str, dict[str, Any]]] = []

    def keep(txid: str, summary: dict[str, Any]) -> None:
        if not _matches(wanted, summary, txid in damage):
            return
        created = float(summary.get("c") or 0.0)
        if older_than is None or now - created >= older_than:
            rows.append((txid, summary))

    with open_readonly(log) as store:
        views, damaged = unfinished_views(store)
        damage = {d.name: d.reason for d in damaged}
        unlisted = dict(damage)
        for txid, summary in summaries(store, unfinished_only=only_unfinished):
            if unlisted.pop(txid, None) is not None and summary.get("s") != DAMAGED:
                summary = {**summary, "s": DAMAGED, "damage": damage[txid]}
            keep(txid, summary)
    for txid, reason in unlisted.items():  # no index entry, or no readable txid
        keep(txid, {"s": DAMAGED, "damage": reason})
    rows.sort(key=lambda item: (float(item[1].get("c") or 0.0), item[1].get("l", [0])[:1]))
    more = 0
    if limit is not None and len(rows) > limit:
        more, rows = len(rows) - limit, rows[:limit]
    by_txid = {v.txid: v for v in views}
    recovery = {txid: _recovery(txid, by_txid, set(damage)) for txid, _ in rows}
    holder = lock_holder(log)
    if as_json:
        echo_json(
            [
                {
                    "txid": txid,
                    "state": s.get("s"),
                    "mode": s.get("m"),
                    "created_at": s.get("c"),
                    "updated_at": s.get("u"),
                    "age_seconds": round(now - float(s.get("c") or 0.0), 3),
                    "records": len(s.get("l") or []),
                    "participants": s.get("p") or {},
                    "damage": s.get("damage"),
                    "recovery": recovery[txid],
                }
                for txid, s in rows
            ]
        )
        return
    if not rows:
        click.echo(f"no matching transactions in {log}", err=True)
        return
    body = [
        [
            txid,
            str(s.get("s")),
            str(s.get("m") or "-"),
            format_time(s.get("c")),
            format_age(now - float(s.get("c") or 0.0)),
            recovery[txid] or "-",
            _participants_text(s.get("p")),
        ]
        for txid, s in rows
    ]
    headers = ["TXID", "STATE", "MODE", "BEGUN", "AGE", "RECOVERY", "PARTICIPANTS"]
    for line in table(headers, body):
        click.echo(line)
    for txid, s in rows:
        if s.get("damage"):
            click.echo(f"{txid}: damaged, in doubt and left alone by recovery: {s['damage']}")
    if more:
        click.echo(f"... {more} more (raise --limit to see them)", err=True)
    if holder and any(recovery.values()):
        click.echo(
            "note: a live coordinator holds this log; unfinished transactions may still be "
            "in progress there",
            err=True,
        )
