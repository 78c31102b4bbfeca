"""``dtc repair``: drop a damaged transaction from a log (docs/recovery.md, "Repairing a
damaged log").

It takes the log's directory lock first, so it refuses (exit code 3) while a live
coordinator holds the log. It keeps a byte-exact copy (as ``dtc backup``) before it changes
anything, prints the evidence it collected (:mod:`.repair_evidence`, :mod:`.repair_text`),
and says how to settle the dropped transaction's participants by hand: the log no longer
knows it, so recovery will not.
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option, log_argument

__all__ = ["repair"]


@click.command()
@log_argument
@click.argument("txid")
@click.option(
    "--lsn",
    "lsns",
    type=click.IntRange(min=1),
    multiple=True,
    metavar="N",
    hidden=True,  # format 1's; refused on format 2, kept one release for a clear error
    help="Format 1 only (refused): format 2 names a damaged record by its place (seq).",
)
@click.option(
    "--backup-to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Where to keep the copy taken first; must not exist (default: "
    "LOG.damaged-<UTC time> next to the log).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Drop the transaction even though it is not damaged (recovery could finish it).",
)
@json_option
def repair(
    log: Path,
    txid: str,
    lsns: tuple[int, ...],
    backup_to: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Drop a damaged transaction from a log so that the coordinator starts again.

    A damaged transaction is in doubt and left alone by recovery (run `dtc verify` to find
    it); the others run on. This command takes a copy of the log first (as `dtc backup`),
    prints the evidence -- the participants with their factories and params, every
    readable record, where the damage is, whom to settle and how -- then removes the
    transaction's records and index entries in one LMDB transaction. TXID is the full
    transaction id, as `dtc verify` prints it.

    The log then no longer knows the transaction, so recovery will not settle it: settle
    its participants by hand from the evidence (commit when it shows a commit decision or
    a participant that committed, otherwise roll back -- presumed abort), then start the
    coordinator. --json prints the same evidence for scripts and tickets.

    Refuses a transaction that is not damaged (recovery can finish it) unless --force, and
    refuses (exit code 3) while a live coordinator holds the log: stop it first.

    \b
    Examples:
      dtc repair /var/lib/shop/dtc-log 5f0c2a1e-8d4b-4c1e-9a57-0b6d1f3e2c10
      dtc repair /var/lib/shop/dtc-log 5f0c2a1e-8d4b-4c1e-9a57-0b6d1f3e2c10 --lsn 4711 \\
          --backup-to /srv/evidence/incident-4711 --json > incident-4711.json
    """
    from .commands.repair import run_repair

    run_repair(log, txid, lsns, backup_to, force, as_json)
