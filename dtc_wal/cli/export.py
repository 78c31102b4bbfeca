"""``dtc export``: every record of the log, machine-readable (read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import click

from .options import log_argument

__all__ = ["export"]


@click.command()
@log_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "json"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object per line; json: one JSON array.",
)
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Write to this file instead of stdout.",
)
def export(log: Path, fmt: str, output: IO[str]) -> None:
    """Export every record of a log as JSON, in log (LSN) order.

    Each record is an object with "lsn", "time" (UTC), "type", "txid", "at" (epoch
    seconds) and the fields its type uses (participant, outcome, reason, error, actor,
    params, data, ...). Bytes are written as {"$base64": "..."}. A damaged record is
    written as {"lsn": ..., "damaged": "why", "raw": {"$base64": ...}} and the exit code is
    then 4. Read-only: one consistent snapshot, safe beside a live coordinator.

    \b
    Examples:
      dtc export /var/lib/shop/dtc-log > records.jsonl
      dtc export /var/lib/shop/dtc-log -o records.jsonl
      dtc export /var/lib/shop/dtc-log | jq -c 'select(.type == "failed")'
    """
    from .commands.export import run_export

    run_export(log, fmt, output)
