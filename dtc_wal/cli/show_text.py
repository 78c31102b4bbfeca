"""The text form of ``dtc show``: where the transaction stands and what to do next, its
participants, and its timeline (every record with its time and details)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..history import TransactionView
from ..records import LogRecord
from ..recovery import in_doubt_of
from ..states import TxState
from .abridge import MAX_CHARS, value_text
from .in_doubt import pending_text
from .output import format_age, format_time, table

__all__ = ["print_show"]

_DETAIL_FIELDS = (
    "outcome",
    "reason",
    "error",
    "attempts",
    "actor",
    "factory",
    "order",
    "mode",
    "params",
    "data",
)


def _details(record: LogRecord, full: bool) -> tuple[str, bool]:
    """The record's fields as ``name=value``, and whether a value was abridged."""
    parts, cut = [], False
    for name in _DETAIL_FIELDS:
        value = getattr(record, name)
        if value is not None:
            text, abridged = value_text(value, full=full)
            parts.append(f"{name}={text}")
            cut |= abridged
    return " ".join(parts), cut


def _next_step(view: TransactionView, log: Path, holder: str | None) -> str | None:
    if view.state.finished:
        return None
    if holder:
        return "a live coordinator holds the log: it finishes this transaction by itself"
    if view.state is TxState.ACTIVE:
        return (
            "no decision in the log: recovery will presume abort and roll it back -- "
            f"dtc recover {log} --registry MODULE:ATTRIBUTE"
        )
    outcome = view.outcome.value if view.outcome else "?"
    pending = [p.name for p in view.pending()]
    if not pending:
        return (
            f"decided {outcome}; every participant has it: recovery only records that the "
            f"transaction completed -- start the coordinator, or dtc recover {log} "
            "--registry MODULE:ATTRIBUTE"
        )
    who = f" --participant {pending[0]}" if len(pending) == 1 else ""
    return (
        f"decided {outcome}; still to be told: {', '.join(pending)}. Run "
        f"`dtc recover {log} --registry MODULE:ATTRIBUTE` once they are reachable, or settle "
        f"them by hand and record it: dtc resolve {log} {view.txid} "
        f"--{'commit' if outcome == 'commit' else 'abort'}{who} --reason '...'"
    )


def _offset(seconds: float) -> str:
    """Time since the transaction began: milliseconds below a second, even for zero."""
    return f"+{seconds * 1000:.0f}ms" if 0 <= seconds < 1 else f"+{format_age(seconds)}"


def print_show(
    log: Path,
    txid: str,
    view: TransactionView | None,
    summary: dict[str, Any],
    entries: list[tuple[int, LogRecord | None, str | None]],
    holder: str | None,
    *,
    damaged: bool,
    full: bool = False,
) -> None:
    now = time.time()
    cut = False
    head: list[tuple[str, str]] = [("transaction", txid)]
    if view is None:
        head.append(("state", f"{summary.get('s')} (per the index; records unreadable)"))
    else:
        state = view.state.value
        if damaged:
            state = (
                f"{summary.get('s')} per the index; the records are damaged and replay only "
                f"to LSN {view.lsns[-1]} ({view.state.value})"
            )
        head.append(("state", state))
        head.append(("mode", view.mode.value if view.mode else "-"))
        head.append(
            (
                "begun",
                f"{format_time(view.created_at)} ({format_age(now - view.created_at)} ago)",
            )
        )
        if view.decided_at is not None:
            outcome = view.outcome.value if view.outcome else "?"
            text = f"{outcome} at {format_time(view.decided_at)}"
            text += f" (+{format_age(view.decided_at - view.created_at)})"
            if view.decided_by:
                text += f" by {view.decided_by}"
            if view.reason:
                text += f": {view.reason}"
            head.append(("decided", text))
        if view.state.finished:
            head.append(("finished", format_time(view.updated_at)))
        else:
            head.append(("last record", f"{format_age(now - view.updated_at)} ago"))
        for item in [] if damaged else in_doubt_of([view]):
            head.append((item.status, pending_text(item, txid=False)))
        hint = _next_step(view, log, holder)
        if damaged:
            hint = f"run `dtc verify {log}` and see docs/recovery.md (repair) before acting on it"
        if hint:
            head.append(("next", hint))
    width = max(len(k) for k, _ in head)
    for key, value in head:
        click.echo(f"{key.ljust(width)}  {value}")
    if view is not None and view.participants:
        click.echo("")
        click.echo("participants (replayed up to the damage)" if damaged else "participants")
        rows = []
        for p in view.ordered():
            note = p.last_error or ""
            if len(note) > MAX_CHARS and not full:
                note, cut = f"{note[:MAX_CHARS]}...[+{len(note) - MAX_CHARS} chars]", True
            if p.resolution is not None:
                note = f"resolved {p.resolution.value} by {p.resolved_by or '?'}: {note}"
            rows.append(
                [p.name, p.state.value, p.factory or "(object)", str(p.attempts), note or "-"]
            )
        for line in table(["NAME", "STATE", "FACTORY", "ATTEMPTS", "NOTE"], rows, "  "):
            click.echo(line)
    click.echo("")
    click.echo("timeline")
    start = view.created_at if view is not None else None
    rows = []
    for lsn, record, damage in entries:
        if record is None:
            rows.append([str(lsn), "?", "?", "DAMAGED", "-", damage or ""])
            continue
        since = _offset(record.at - start) if start is not None else "-"
        details, abridged = _details(record, full)
        cut |= abridged
        rows.append(
            [
                str(lsn),
                format_time(record.at),
                since,
                record.type.name.lower().replace("_", "-"),
                record.participant or "-",
                details,
            ]
        )
    headers = ["LSN", "TIME", "SINCE BEGIN", "RECORD", "PARTICIPANT", "DETAILS"]
    for line in table(headers, rows, "  "):
        click.echo(line)
    if cut:
        click.echo(
            f"abridged: long values are shortened ([+N chars], [+N items], [+N bytes]); "
            f"`dtc show {log} {txid} --full` prints them whole, `--json` as JSON"
        )
