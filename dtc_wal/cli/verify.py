"""``dtc verify``: check every record, the state order and the indexes (read-only)."""

from __future__ import annotations

from pathlib import Path

import click

from ..maintenance import verify as format2
from ..wal.verify import VerifyReport, verify_log
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

    Every problem is printed with the LSN of the offending record and its transaction id
    (format 2: the transaction and the record's place in it, each transaction folded by the
    protocol's own transition table);
    the exit code is 4 when anything is wrong, 0 when the log is clean. Read-only: it reads
    one consistent snapshot, so it is safe while a live coordinator is writing.

    \b
    Examples:
      dtc verify /var/lib/shop/dtc-log
      dtc verify /var/lib/shop/dtc-log --json | jq '.problems[]'
    """
    warn_if_lockless(log)
    report: VerifyReport | format2.VerifyReport
    if format2.log_format(log) == 2:  # through the TransactionLog interface
        with progress_bar("verifying transactions") as update:
            report = format2.verify_log(log, progress=update)
    else:
        with progress_bar("verifying records") as update:
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
