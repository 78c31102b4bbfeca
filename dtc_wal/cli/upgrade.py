"""``dtc upgrade``: convert a format-1 log to format 2, keeping the original as evidence."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import LogCorruptError, UnsupportedFormatError
from ..maintenance.upgrade import UpgradeReport, upgrade_log
from .errors import EXIT_ATTENTION, CliError, one_line
from .options import json_option, log_argument
from .output import echo_json

__all__ = ["upgrade"]


def _print(report: UpgradeReport, skip_damaged: bool) -> None:
    for item in report.not_converted:
        kept = " (kept in the original only)" if item.damaged and skip_damaged else ""
        what = "damaged" if item.damaged else "would differ"
        click.echo(f"not converted, {what}: {item}{kept}")
    click.echo(report.summary())
    if report.dry_run:
        return
    click.echo(f"format-2 log: {report.target}")
    click.echo(f"format-1 original (unchanged): {report.evidence}")


@click.command()
@log_argument
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Write the format-2 log to DIR (new or empty); the original stays where it is.",
)
@click.option(
    "--in-place",
    is_flag=True,
    help="Put the format-2 log at LOG once it is complete and verified; the original is "
    "moved aside to LOG.format1-TIME.",
)
@click.option(
    "--dry-run", is_flag=True, help="Convert and check in memory; write nothing, list problems."
)
@click.option(
    "--skip-damaged",
    is_flag=True,
    help="Leave out transactions format 1 cannot read back (listed; they stay in the original).",
)
@json_option
def upgrade(
    log: Path, to: Path | None, in_place: bool, dry_run: bool, skip_damaged: bool, as_json: bool
) -> None:
    """Convert a format-1 log to log format 2, keeping the original unchanged.

    Every transaction is converted, folded by the protocol's transition table and compared
    with what format 1 says (state of the transaction and of each participant); the new
    log is written to a new directory, read back and verified, and only then put in place.
    A damaged transaction is never guessed at: it is listed and the upgrade refuses (exit
    code 4) unless --skip-damaged. A transaction format 2 would read differently refuses
    it always (exit code 1). Refuses (exit code 3) while a live coordinator holds the log.

    \b
    Examples:
      dtc upgrade /var/lib/shop/dtc-log --dry-run
      dtc upgrade /var/lib/shop/dtc-log --to /var/lib/shop/dtc-log2
      dtc upgrade /var/lib/shop/dtc-log --in-place --json
    """
    if to is None and not in_place and not dry_run:
        raise click.UsageError("say where the format-2 log goes: --to DIR or --in-place")
    if to is not None and in_place:
        raise click.UsageError("give --to DIR or --in-place, not both")
    try:
        report = upgrade_log(
            log, to=to, in_place=in_place, dry_run=dry_run, skip_damaged=skip_damaged
        )
    except UnsupportedFormatError:
        raise
    except LogCorruptError as exc:  # damaged transactions: they need an operator
        raise CliError(one_line(exc), EXIT_ATTENTION) from exc
    if as_json:
        echo_json(report.to_dict())
    else:
        _print(report, skip_damaged)
    refusal = report.refusal(skip_damaged) if dry_run else None
    if refusal is not None:
        code = 1 if any(not n.damaged for n in report.not_converted) else EXIT_ATTENTION
        raise CliError(str(refusal), code)
