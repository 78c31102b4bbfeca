"""``dtc show``: one transaction's full timeline, read and replayed from its records.

It opens the log read-only (an LMDB reader) and works while a live coordinator runs. The
text form is printed by :mod:`.show_text`.
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option, log_argument

__all__ = ["show"]


@click.command()
@log_argument
@click.argument("txid")
@click.option(
    "--full",
    is_flag=True,
    help="Print data, params and errors whole (by default long values are shortened).",
)
@json_option
def show(log: Path, txid: str, full: bool, as_json: bool) -> None:
    """Show one transaction's full timeline: every record with its time and details.

    TXID may be abbreviated to any unique prefix. The header says where the transaction
    stands and what to do next; the timeline lists every record (LSN, time, time since
    begin, type, participant, outcome, error, reason, actor, data).

    Long values are shortened, saying what was left out: strings after 200 characters,
    bytes after 96, lists and maps after 20 entries, nesting after 6 levels, each value
    after 2000 characters. --full prints them whole; --json always does.

    \b
    Examples:
      dtc show /var/lib/shop/dtc-log 5f0c2a1e-8d4b-4c1e-9a57-0b6d1f3e2c10
      dtc show /var/lib/shop/dtc-log 5f0c2a1e
      dtc show /var/lib/shop/dtc-log 5f0c2a1e --full
      dtc show /var/lib/shop/dtc-log 5f0c2a1e --json
    """
    from .commands.show import run_show

    run_show(log, txid, full, as_json)
