"""``dtc show``: one transaction's full timeline, read and replayed from its records.

It opens the log read-only (an LMDB reader) and works while a live coordinator runs. The
text form is printed by :mod:`.show_text`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import LogCorruptError
from ..history import TransactionView, replay_until_refused
from ..records import LogRecord, decode_record, lsn_key
from ..recovery import in_doubt_of
from .errors import EXIT_ATTENTION, CliError, one_line
from .in_doubt import in_doubt_dict
from .logs import find_txid, lock_holder, open_readonly
from .options import json_option, log_argument
from .output import echo_json, format_time
from .show_text import print_show

__all__ = ["show"]


def _record_dict(lsn: int, record: LogRecord | None, damage: str | None) -> dict[str, Any]:
    if record is None:
        return {"lsn": lsn, "damaged": damage}
    return {"lsn": lsn, "time": format_time(record.at), **record.to_dict()}


def _view_dict(view: TransactionView) -> dict[str, Any]:
    return {
        "txid": view.txid,
        "state": view.state.value,
        "mode": view.mode.value if view.mode else None,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "decided_at": view.decided_at,
        "outcome": view.outcome.value if view.outcome else None,
        "reason": view.reason,
        "decided_by": view.decided_by,
        "participants": [
            {
                "name": p.name,
                "order": p.order,
                "state": p.state.value,
                "factory": p.factory,
                "params": p.params,
                "attempts": p.attempts,
                "last_error": p.last_error,
                "resolution": p.resolution.value if p.resolution else None,
                "resolved_by": p.resolved_by,
            }
            for p in view.ordered()
        ],
    }


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
    entries: list[tuple[int, LogRecord | None, str | None]] = []
    with open_readonly(log) as store:
        txid = find_txid(store, txid)
        with store.reader() as txn:
            summary = store.summary(txid, txn) or {}
            for lsn in summary.get("l", []):
                raw = txn.get(lsn_key(lsn), db=store.records)
                if raw is None:
                    entries.append((lsn, None, f"record at LSN {lsn} is missing from the log"))
                    continue
                try:
                    entries.append((lsn, decode_record(bytes(raw), lsn), None))
                except LogCorruptError as exc:
                    entries.append((lsn, None, one_line(exc)))
    holder = lock_holder(log)
    good = [(lsn, rec) for lsn, rec, _ in entries if rec is not None]
    problems = [damage for _, rec, damage in entries if rec is None and damage]
    view, lsn, error = replay_until_refused(good)
    refused = None if error is None else f"replay stopped at LSN {lsn}: {one_line(error)}"
    if refused:
        problems.append(refused)
    if as_json:
        out: dict[str, Any] = (
            _view_dict(view) if view else {"txid": txid, "state": summary.get("s")}
        )
        if problems:  # the replay stopped early: the index knows where it really stands
            out["replayed_state"] = view.state.value if view else None
            out["state"] = summary.get("s")
        pending = in_doubt_of([view]) if view else []
        out["in_doubt"] = [in_doubt_dict(d) for d in pending if not d.awaiting_recovery]
        out["awaiting_recovery"] = [in_doubt_dict(d) for d in pending if d.awaiting_recovery]
        out["records"] = [_record_dict(lsn, rec, damage) for lsn, rec, damage in entries]
        out["problems"] = problems
        echo_json(out)
    else:
        print_show(log, txid, view, summary, entries, holder, damaged=bool(problems), full=full)
        for problem in problems:
            click.echo(f"damaged: {problem}")
    if problems:
        raise CliError(
            f"transaction {txid}: {len(problems)} problem(s) reading its records; run "
            f"`dtc verify {log}`",
            EXIT_ATTENTION,
        )
