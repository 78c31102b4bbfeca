"""``dtc list``: transactions oldest first, filtered by state and age.

It opens the log read-only (an LMDB reader) and works while a live coordinator runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..recovery.report import DAMAGED
from ..states import TxState
from .durations import DURATION
from .options import json_option, log_argument

__all__ = ["list_transactions"]

UNFINISHED_STATES = (TxState.ACTIVE, TxState.DECIDED_COMMIT, TxState.DECIDED_ABORT)
FINISHED_STATES = (TxState.COMMITTED, TxState.ABORTED)
STATE_CHOICES = [s.value for s in TxState] + ["unfinished", "finished", DAMAGED]


def _wanted_states(states: tuple[str, ...]) -> set[str]:
    wanted: set[str] = set(states) & {"unfinished", "finished", DAMAGED}
    for state in states:
        if state == "unfinished":
            wanted.update(s.value for s in UNFINISHED_STATES)
        elif state == "finished":
            wanted.update(s.value for s in FINISHED_STATES)
        else:
            wanted.add(state)
    return wanted


@click.command("list")
@log_argument
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATE_CHOICES),
    help="Only transactions in this state; repeat for several. 'unfinished' means active, "
    "decided-commit or decided-abort; 'finished' means committed or aborted; 'damaged' means "
    "records or index entry unreadable (in doubt, left alone by recovery).",
)
@click.option(
    "--older-than",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="Only transactions begun more than this long ago: 30s, 10m, 2h, 3d, 1w, 1h30m.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Print at most N transactions (the oldest).",
)
@json_option
def list_transactions(
    log: Path,
    states: tuple[str, ...],
    older_than: float | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List transactions, oldest first: one line per transaction.

    Columns: transaction id, state, mode (2pc or saga), when it began, its age, where an
    unfinished one stands with recovery ("awaiting recovery": not tried since it was left
    unfinished; "in doubt": tried and could not finish, a participant cannot be rebuilt,
    or the transaction is damaged; see `dtc show`), and each participant's state. An
    unfinished transaction whose records cannot be read back is listed as damaged, with
    the damage below the table.

    \b
    Examples:
      dtc list /var/lib/shop/dtc-log --state unfinished
      dtc list /var/lib/shop/dtc-log --state decided-commit --older-than 10m
      dtc list /var/lib/shop/dtc-log --state aborted --limit 20 --json
    """
    from .commands.listing import run_list

    run_list(log, states, older_than, limit, as_json)
