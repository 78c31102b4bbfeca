"""``dtc export`` on a format-2 log: every record, transaction by transaction (in the log's
txid order), each in its transaction's order with its ``seq``; a damaged transaction ends
with ``{"txid", "seq", "damaged"}`` (the interface hands back no raw bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from ..errors import EXIT_ATTENTION, CliError, one_line
from ..output import dumps
from ..progress import progress_bar
from .reading import entry_of, open_readonly, record_dict

__all__ = ["run_export"]


def run_export(log: Path, fmt: str, output: IO[str]) -> None:
    damaged = 0
    to_file = getattr(output, "name", "-") not in ("-", "<stdout>")
    written = 0

    def write(item: dict[str, Any]) -> None:
        nonlocal written
        written += 1
        if fmt == "json":
            output.write(("\n  " if written == 1 else ",\n  ") + dumps(item))
        else:
            output.write(dumps(item) + "\n")

    with open_readonly(log) as opened:
        total = opened.info().transactions
        with progress_bar("exporting transactions", enabled=to_file) as update:
            if fmt == "json":
                output.write("[")
            for done, stored in enumerate(opened.transactions(), start=1):
                names = entry_of(stored).names()
                for seq, record in enumerate(stored.records):
                    write(record_dict(record, seq, names))
                if stored.damage is not None:
                    damaged += 1
                    at = stored.damage.seq
                    write({"txid": stored.txid, "seq": at, "damaged": one_line(stored.damage)})
                if done % 256 == 0:
                    update(done, total)
            update(total, total)
            if fmt == "json":
                output.write("\n]\n" if written else "]\n")
    output.flush()
    if damaged:
        raise CliError(
            f"{damaged} damaged transaction(s) exported up to their damage; run `dtc verify {log}`",
            EXIT_ATTENTION,
        )
