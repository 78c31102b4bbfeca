"""``dtc export``: every record of the log, machine-readable (read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import click

from ..errors import LogCorruptError
from ..records import decode_record
from .errors import EXIT_ATTENTION, CliError, one_line
from .logs import open_readonly
from .options import log_argument
from .output import dumps, format_time, to_jsonable
from .progress import progress_bar

__all__ = ["export"]


def record_entry(lsn: int, value: bytes) -> dict[str, Any]:
    """One exported record; a damaged one keeps its raw bytes (base64) and the damage."""
    try:
        record = decode_record(value, lsn)
    except LogCorruptError as exc:
        return {"lsn": lsn, "damaged": one_line(exc), "raw": to_jsonable(value)}
    return {"lsn": lsn, "time": format_time(record.at), **record.to_dict()}


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
    damaged = 0
    to_file = getattr(output, "name", "-") not in ("-", "<stdout>")
    with open_readonly(log) as store:
        total = store.counts()["records"]
        with progress_bar("exporting records", enabled=to_file) as update:
            if fmt == "json":
                output.write("[")
            for done, (lsn, value) in enumerate(store.iter_records(), start=1):
                entry = record_entry(lsn, value)
                damaged += "damaged" in entry
                if fmt == "json":
                    output.write(("\n  " if done == 1 else ",\n  ") + dumps(entry))
                else:
                    output.write(dumps(entry) + "\n")
                if done % 1024 == 0:
                    update(done, total)
            update(total, total)
            if fmt == "json":
                output.write("\n]\n")
    output.flush()
    if damaged:
        raise CliError(
            f"{damaged} damaged record(s) exported with their raw bytes; run `dtc verify {log}`",
            EXIT_ATTENTION,
        )
