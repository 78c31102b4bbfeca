"""The text form of ``dtc repair``: the backup, the damage, what was removed, the
participants, every readable record, and the next steps."""

from __future__ import annotations

import json
from typing import Any

import click

from ..wal.repair import RepairReport
from .output import format_time, table, to_jsonable

__all__ = ["print_repair"]

_PLAIN_FIELDS = ("type", "txid", "at", "participant", "lsn")


def _value_text(value: Any) -> str:
    value = to_jsonable(value)
    if isinstance(value, str) and value and not any(c.isspace() or c in '="' for c in value):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _details(record: dict[str, Any]) -> str:
    return " ".join(
        f"{name}={_value_text(value)}"
        for name, value in record.items()
        if name not in _PLAIN_FIELDS and value is not None
    )


def _lsn_text(lsns: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    parts: list[str] = []
    ordered = sorted(lsns)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


def print_repair(
    report: RepairReport, participants: list[dict[str, Any]], source: str, steps: list[str]
) -> None:
    summary = report.summary
    state = f"{summary.get('s')} per the index" if summary else "unknown (index entry damaged)"
    if summary:
        state += (
            f"; mode {summary.get('m') or '-'}, begun {format_time(summary.get('c'))}, "
            f"last written {format_time(summary.get('u'))}"
        )
    head = [
        ("backup", f"{report.backup} (the log as it was before the repair)"),
        ("transaction", report.txid),
        ("state", state),
    ]
    for lsn, why in sorted(report.damaged.items()):
        head.append(("damaged", f"{'index entry' if lsn == 0 else f'LSN {lsn}'}: {why}"))
    head.append(
        (
            "removed",
            f"LSN {_lsn_text(report.removed_lsns)} and the transaction's index entries",
        )
    )
    width = max(len(k) for k, _ in head)
    for key, value in head:
        click.echo(f"{key.ljust(width)}  {' '.join(value.split())}")
    click.echo("")
    click.echo(f"participants (last state {source})")
    if participants:
        rows = [
            [
                p["name"],
                p["state"] or "?",
                p["factory"] or ("?" if p["order"] is None else "(object)"),
                "?" if p["order"] is None else _value_text(p["params"] or "-"),
            ]
            for p in participants
        ]
        for line in table(["NAME", "LAST STATE", "FACTORY", "PARAMS"], rows, "  "):
            click.echo(line)
        if any(p["order"] is None for p in participants):
            click.echo("  (?: its enlisted record is damaged; the backup keeps its raw bytes)")
    else:
        click.echo("  none readable")
    click.echo("")
    click.echo("readable records (removed from the log; the backup keeps them)")
    rows = [
        [
            str(r["lsn"]),
            format_time(r.get("at")),
            str(r["type"]),
            str(r.get("participant") or "-"),
            _details(r),
        ]
        for r in report.records
    ]
    if rows:
        for line in table(["LSN", "TIME", "RECORD", "PARTICIPANT", "DETAILS"], rows, "  "):
            click.echo(line)
    else:
        click.echo("  none")
    click.echo("")
    click.echo("next")
    for number, step in enumerate(steps, 1):
        click.echo(f"  {number}. {step}")
