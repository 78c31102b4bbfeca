"""``dtc``: the command group and the commands that need no log."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="dtc-wal")
def cli() -> None:
    """Inspect, verify, recover and resolve a dtc-wal transaction log."""


@cli.command()
@click.option(
    "--log",
    "log_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Log directory to use (default: a fresh temporary directory).",
)
def demo(log_dir: str | None) -> None:
    """Run the e-commerce demo: a failed payment rolls everything back, then it commits."""
    from ..demo import run_demo

    run_demo(log_dir, click.echo)


def main() -> None:
    cli(prog_name="dtc")
