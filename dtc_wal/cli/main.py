"""``dtc``: the command group, its global options, and the commands that need no log."""

from __future__ import annotations

import logging

import click

from .backup import backup
from .commands import refusing_format1
from .errors import DtcGroup
from .export import export
from .listing import list_transactions
from .maintenance import compact, recover_command, resolve
from .repair import repair
from .show import show
from .status import status
from .upgrade import upgrade
from .verify import verify

__all__ = ["cli", "main"]


@click.group(cls=DtcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dtc-wal")
@click.option(
    "--debug",
    is_flag=True,
    help="Show tracebacks instead of one-line errors, and log everything to stderr.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does to stderr.")
def cli(debug: bool, verbose: bool) -> None:
    """Inspect, verify, recover and resolve a dtc-wal transaction log.

    LOG is the directory a TransactionCoordinator was opened on. Read-only commands
    (status, list, show, verify, export, and dry runs) work while a live coordinator is
    using the log; commands that write (recover, resolve, compact, backup, repair) refuse
    until it stops. Read-only commands also read a log this user cannot write (a copy, a
    snapshot), with a warning; commands that write refuse it and say what to do.

    \b
    Exit codes:
      0  success
      1  error (no log, unknown transaction, refused resolution, damaged log, ...)
      2  bad usage (unknown option, bad duration, bad --registry)
      3  a live coordinator holds the log (commands that write)
      4  needs attention: verify found problems, participants still in doubt
         (recover --dry-run: would stay in doubt)

    \b
    Examples:
      dtc status /var/lib/shop/dtc-log
      dtc list /var/lib/shop/dtc-log --state unfinished --older-than 10m
      dtc show /var/lib/shop/dtc-log 5f0c2a1e
      dtc verify /var/lib/shop/dtc-log
      dtc recover /var/lib/shop/dtc-log --registry shop.participants:registry
    """
    if debug or verbose:
        logging.basicConfig(
            level=logging.DEBUG if debug else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


@cli.command()
@click.option(
    "--log",
    "log_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Log directory to use, kept afterwards (default: a temporary directory).",
)
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the temporary log directory and print how to inspect it (default: removed).",
)
def demo(log_dir: str | None, keep: bool) -> None:
    """Run the e-commerce demo: a failed payment rolls everything back, then it commits.

    The log goes to a temporary directory removed at the end, unless --keep or --log DIR;
    then the demo prints the `dtc show` command for it.

    \b
    Examples:
      dtc demo
      dtc demo --keep
      dtc demo --log /tmp/demo-log && dtc status /tmp/demo-log
    """
    from ..demo import run_demo

    run_demo(log_dir, click.echo, keep=keep)


for _command in (
    status,
    list_transactions,
    show,
    verify,
    recover_command,
    resolve,
    compact,
    export,
    backup,
    repair,
    upgrade,
):
    if _command is not upgrade and _command.callback is not None:
        _command.callback = refusing_format1(_command.name or "", _command.callback)
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="dtc")
