"""Commands that write: ``dtc recover``, ``dtc resolve``, ``dtc compact``.

Each takes the log's directory lock first, so each refuses (exit code 3) while a live
coordinator holds the log -- that coordinator recovers and resolves by itself. Dry runs
only read and work beside a live coordinator.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..recovery import RecoveryReport
from ..registry import ParticipantRegistry
from .durations import DURATION
from .errors import EXIT_ATTENTION, CliError
from .options import json_option, log_argument
from .output import echo_json
from .registry_spec import RegistrySpec

__all__ = ["compact", "finish_recovery", "recover_command", "resolve"]


# -- recover -------------------------------------------------------------------------------


@click.command("recover")
@log_argument
@click.option(
    "--registry",
    "registry",
    type=RegistrySpec(),
    default=None,
    metavar="MODULE:ATTRIBUTE",
    help="Your ParticipantRegistry (or a function returning it), e.g. "
    "myapp.participants:registry. The current directory is importable. Without it only "
    "saga steps logged with import paths can be rebuilt.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what recovery would do; call no participant and write nothing.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Transactions driven at once while some wait on slow participants (1: one by one).",
)
@json_option
def recover_command(
    log: Path, registry: ParticipantRegistry | None, dry_run: bool, workers: int, as_json: bool
) -> None:
    """Run crash recovery on a log with your participant registry.

    Every unfinished transaction is driven to its outcome: re-send commit where the log
    holds a commit decision, roll back where it holds none (presumed abort). Participants
    are rebuilt from the factories the log names, so --registry must name the registry
    your application uses. Participants that cannot be reached or rebuilt stay in doubt
    (exit code 4); fix them and run again, or settle them with `dtc resolve`.

    --dry-run exits as the real run would, so it serves as a pre-flight check: code 4
    when a participant would stay in doubt because the registry cannot rebuild it, or a
    damaged transaction would be left alone (the dry run calls nobody, so it cannot see a
    participant that is down).

    Refuses (exit code 3) while a live coordinator holds the log: it recovers by itself.

    \b
    Examples:
      dtc recover /var/lib/shop/dtc-log --registry shop.participants:registry --dry-run
      dtc recover /var/lib/shop/dtc-log --registry shop.participants:registry
    """
    from .commands.maintenance import run_recover

    run_recover(log, registry, dry_run, workers, as_json)


def _print_recovery(report: RecoveryReport) -> None:
    for action in report.transactions:
        if action.finished:
            result = "would finish" if report.dry_run else "finished"
        else:
            result = f"in doubt: {', '.join(action.pending)}"
        click.echo(f"{action.txid}  {action.state_before}: {action.action} -> {result}")
    for resource, txid, verb in report.orphans:
        click.echo(f"{txid}  orphan prepared branch in {resource}: {verb}")
    for item in report.in_doubt:
        click.echo(f"in doubt: {item}")
    if report.stale_readers_cleared:
        click.echo(f"cleared {report.stale_readers_cleared} stale LMDB reader slot(s)")
    click.echo(report.summary())


def finish_recovery(report: RecoveryReport, log: Path, *, dry_run: bool, as_json: bool) -> None:
    """Print a recovery report (text or JSON) and exit 4 unless it is clean."""
    if as_json:
        echo_json(report.to_dict())
    else:
        _print_recovery(report)
    if report.clean:
        return
    # A dry run exits as the real run would, so that it is a pre-flight check.
    damaged = len(report.damaged)
    participants = len(report.in_doubt) - damaged
    what = []
    if participants and dry_run:
        what.append(
            f"{participants} participant(s) would stay in doubt (--registry cannot rebuild them)"
        )
    elif participants:
        what.append(f"{participants} participant(s) still in doubt")
    if damaged:
        what.append(f"{damaged} damaged transaction(s) {'would be ' if dry_run else ''}left alone")
    raise CliError(f"{', '.join(what)}; see `dtc show {log} TXID`", EXIT_ATTENTION)


# -- resolve -------------------------------------------------------------------------------


@click.command()
@log_argument
@click.argument("txid")
@click.option("--commit", "outcome", flag_value="commit", help="Resolve to commit.")
@click.option("--abort", "--rollback", "outcome", flag_value="rollback", help="Resolve to abort.")
@click.option(
    "--participant",
    metavar="NAME",
    help="Settle only this participant (the transaction must be decided already).",
)
@click.option("--reason", required=True, help="Why: recorded in the log with your name.")
@click.option(
    "--heuristic",
    is_flag=True,
    help="Record a participant outcome that contradicts the decision (what really happened).",
)
@click.option(
    "--actor",
    metavar="WHO",
    help="Who decided, for the log (default: user@host of this shell).",
)
@json_option
def resolve(
    log: Path,
    txid: str,
    outcome: str | None,
    participant: str | None,
    reason: str,
    heuristic: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Record an operator's decision for a stuck (in-doubt) transaction.

    \b
    Two cases:
    * no decision in the log yet: decide it. --commit needs every participant
      prepared in the log; --abort is always allowed.
    * decided, but a participant cannot be reached or rebuilt: settle it by hand,
      then record that here (all pending participants, or one with --participant).
      The outcome never changes; a resolution that contradicts it needs --heuristic.

    The decision is written to the log (with --reason and --actor) and nothing is sent to
    participants: run `dtc recover` afterwards to deliver a new decision. Refuses (exit
    code 3) while a live coordinator holds the log; use its resolve() method instead.

    \b
    Examples:
      dtc resolve /var/lib/shop/dtc-log 5f0c2a1e-... --abort --reason "payment never prepared"
      dtc resolve /var/lib/shop/dtc-log 5f0c2a1e-... --commit --participant warehouse \\
          --reason "committed by hand in the warehouse DB, ticket OPS-123"
    """
    from .commands.maintenance import run_resolve

    run_resolve(log, txid, outcome, participant, reason, heuristic, actor, as_json)


# -- compact -------------------------------------------------------------------------------


@click.command()
@log_argument
@click.option(
    "--keep",
    type=DURATION,
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Keep finished transactions younger than this (30s, 10m, 2h, 3d, 1w).",
)
@click.option(
    "--copy/--no-copy",
    "copy",
    default=None,
    hidden=True,  # format 1's; kept one release so scripts passing --no-copy still run
    help="Format 1 only: a compacting copy. --copy is refused (format 2 never copies: LMDB "
    "reuses the freed pages); --no-copy changes nothing.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@json_option
def compact(log: Path, keep: float, copy: bool | None, dry_run: bool, as_json: bool) -> None:
    """Remove finished transactions older than --keep and shrink the file.

    Only committed and aborted transactions are removed, never an unfinished one, whatever
    its age. LMDB reuses freed pages but never shrinks its file, so the file is then
    compacted by a copy (checked, then swapped in; the old file is kept until the copy is
    complete). Refuses (exit code 3) while a live coordinator holds the log; --dry-run
    works beside it.

    \b
    Examples:
      dtc compact /var/lib/shop/dtc-log --dry-run
      dtc compact /var/lib/shop/dtc-log --keep 30d
      dtc compact /var/lib/shop/dtc-log --keep 0s --json
    """
    from .commands.maintenance import run_compact

    run_compact(log, keep, copy, dry_run, as_json)
