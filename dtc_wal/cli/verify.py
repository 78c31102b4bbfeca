"""``dtc verify``: check every record, the state order and the indexes (read-only)."""

from __future__ import annotations

from pathlib import Path

import click

from ..maintenance.verify import verify_log
from .errors import EXIT_ATTENTION, CliError
from .logs import warn_if_lockless
from .options import json_option, log_argument
from .output import echo_json
from .progress import progress_bar

__all__ = ["verify"]


@click.command()
@log_argument
@json_option
def verify(log: Path, as_json: bool) -> None:
    """Check a log: CRCs, record order, allowed transitions, indexes vs records.

    Every problem is printed with its transaction and the record's place in it (``seq``),
    each transaction folded by the protocol's own transition table;
    the exit code is 4 when anything is wrong, 0 when the log is clean. Read-only: it reads
    one consistent snapshot, so it is safe while a live coordinator is writing.

    \b
    Examples:
      dtc verify /var/lib/shop/dtc-log
      dtc verify /var/lib/shop/dtc-log --json | jq '.problems[]'
    """
    warn_if_lockless(log)
    with progress_bar("verifying transactions") as update:  # through the TransactionLog
        report = verify_log(log, progress=update)
    if as_json:
        echo_json(report.to_dict())
    else:
        for problem in report.problems:
            click.echo(f"{problem.check}: {problem}")
        if report.ok:
            click.echo(report.summary())
    if not report.ok:
        raise CliError(f"{log}: {report.summary()}", EXIT_ATTENTION)
