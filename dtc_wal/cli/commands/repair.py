"""``dtc repair`` on a format-2 log: drop one damaged transaction, keeping a consistent
copy of the log first and printing the evidence (its readable records, its participants,
the damage), then how to settle its participants by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ...drivers import report as words
from ...errors import TransactionStateError, UnknownTransactionError
from ...log.lmdb.repair import drop_transaction
from ...protocol import Transaction
from ...protocol.records import MemberState, Mode
from ..backup import backup_target
from ..errors import CliError
from ..logs import require_log, require_writable, unknown_transaction
from ..output import echo_json
from .reading import entry_of, record_dict

__all__ = ["run_repair"]


def _settle(entry_outcome: str | None) -> str:
    if entry_outcome == "commit":
        return "commit"
    return "rollback"


_DONE = {
    "commit": {MemberState.COMMITTED, MemberState.READ_ONLY},
    "rollback": {MemberState.ROLLED_BACK, MemberState.READ_ONLY, MemberState.SKIPPED},
}


def _to_settle(tx: Transaction | None, names: list[str], settle: str) -> list[str]:
    """The participants still to be told ``settle`` by hand, as far as the readable records
    say (all of them when nothing folds); a saga's steps last first, as they compensate."""
    if tx is None:
        pending = names
    else:
        pending = [m.name for m in tx.members if m.state not in _DONE[settle]]
        if tx.mode is Mode.SAGA and settle == "rollback":
            pending.reverse()
    return pending


def _first_step(tx: Transaction | None, settle: str, pending: list[str]) -> str:
    who = f" ({', '.join(pending)})" if pending else ""
    if settle == "commit":
        what = f"commit it in every participant that has not committed yet{who}"
        why = "the log holds a commit decision"
    elif tx is not None and tx.mode is Mode.SAGA:
        what = f"compensate every step that may have run, last step first{who}"
        why = "no readable commit decision: presumed abort"
    else:
        what = f"roll it back in every participant that has not rolled back yet{who}"
        why = "no readable commit decision: presumed abort"
    return (
        "settle each participant by hand -- the log no longer knows this transaction, so "
        f"recovery will not: {what} ({why})"
    )


def run_repair(
    log: Path,
    txid: str,
    lsns: tuple[int, ...],
    backup_to: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    if lsns:
        raise click.UsageError(
            "--lsn is for format-1 logs: a format-2 transaction's records are one range, all "
            "dropped together"
        )
    require_log(log)
    require_writable(log, "repair")
    target = backup_target(log, backup_to, "--backup-to")
    try:
        dropped = drop_transaction(log, txid, target, force=force)
    except UnknownTransactionError:
        raise unknown_transaction(txid, log) from None
    except TransactionStateError:
        raise CliError(
            f"transaction {txid} is not damaged: its records read back, so recovery can "
            f"finish it (`dtc recover {log} --registry MODULE:ATTRIBUTE`); pass --force to "
            "drop it anyway"
        ) from None
    entry = entry_of(dropped.before)
    names = entry.names()
    tx = entry.tx
    outcome = words.word(tx.outcome) if tx is not None else None
    settle = _settle(outcome)
    participants: list[dict[str, Any]] = []
    if tx is not None:
        participants = [
            {"name": m.name, "factory": m.factory, "params": m.params, "state": m.state.value}
            for m in tx.members
        ]
    pending = _to_settle(tx, names, settle)
    steps = [
        _first_step(tx, settle, pending),
        f"keep the copy {dropped.backup} until the incident is closed",
        "then start the coordinator: the log no longer knows this transaction",
    ]
    damage = str(dropped.before.damage) if dropped.before.damage else None
    if as_json:
        echo_json(
            {
                "txid": txid,
                "backup": str(dropped.backup),
                "records_removed": dropped.records_removed,
                "damaged": [{"seq": dropped.before.damage.seq, "reason": damage}]
                if dropped.before.damage
                else [],
                "records": [record_dict(r, i, names) for i, r in enumerate(entry.stored.records)],
                "participants": participants,
                "settle": settle,
                "to_settle": pending,
                "next": steps,
            }
        )
        return
    click.echo(f"kept a copy of {log} in {dropped.backup}")
    click.echo(f"dropped transaction {txid} ({dropped.records_removed} stored record(s))")
    if damage:
        click.echo(f"damage: {damage}")
    for r in (record_dict(r, i, names) for i, r in enumerate(entry.stored.records)):
        click.echo(f"  record {r['seq']}: {r['type']} at {r['time']}")
    for p in participants:
        click.echo(f"  participant {p['name']} ({p['factory'] or 'object'}): {p['state']}")
    for step in steps:
        click.echo(f"next: {step}")
