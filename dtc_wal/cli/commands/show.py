"""``dtc show`` on a format-2 log: a transaction's timeline from its format-2 records
(Opened with its members, StepDone, Decided with the votes, Acked, Failed, Resolved,
Ended). Records are numbered by their position in the transaction (SEQ), not by LSN."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ...drivers import report as words
from ...protocol import Transaction, TxState
from ..abridge import value_text
from ..errors import EXIT_ATTENTION, CliError
from ..in_doubt import in_doubt_dict, pending_text
from ..logs import lock_holder
from ..output import echo_json, format_age, format_time, table
from .reading import Entry, find_entry, in_doubt_of, open_readonly, record_dict

__all__ = ["run_show"]

_SKIP = {"seq", "time", "type", "txid", "at", "participant"}


def _view_dict(entry: Entry, tx: Transaction) -> dict[str, Any]:
    return {
        "txid": tx.txid,
        "state": entry.state,
        "mode": tx.mode.value,
        "created_at": tx.opened_at,
        "updated_at": tx.updated_at,
        "decided_at": tx.decided_at,
        "outcome": words.word(tx.outcome),
        "reason": tx.reason,
        "decided_by": tx.actor,
        "data": tx.data,
        "participants": [
            {
                "name": m.name,
                "order": i,
                "state": m.state.value,
                "factory": m.factory,
                "params": m.params,
                "attempts": m.attempts,
                "last_error": m.error,
                "resolution": words.word(m.resolution.outcome) if m.resolution else None,
                "resolved_by": m.resolution.actor if m.resolution else None,
            }
            for i, m in enumerate(tx.members)
        ],
    }


def _next_step(tx: Transaction, log: Path, holder: str | None) -> str | None:
    if tx.ended:
        return None
    if holder:
        return "a live coordinator holds the log: it finishes this transaction by itself"
    if tx.state is TxState.ACTIVE:
        return (
            "no decision in the log: recovery will presume abort and roll it back -- "
            f"dtc recover {log} --registry MODULE:ATTRIBUTE"
        )
    outcome = words.word(tx.outcome) or "?"
    pending = [tx.members[i].name for i in tx.pending()]
    if not pending:
        return (
            f"decided {outcome}; every participant has it: recovery only records that the "
            f"transaction completed -- dtc recover {log} --registry MODULE:ATTRIBUTE"
        )
    who = f" --participant {pending[0]}" if len(pending) == 1 else ""
    return (
        f"decided {outcome}; still to be told: {', '.join(pending)}. Run "
        f"`dtc recover {log} --registry MODULE:ATTRIBUTE` once they are reachable, or settle "
        f"them by hand and record it: dtc resolve {log} {tx.txid} "
        f"--{'commit' if outcome == 'commit' else 'abort'}{who} --reason '...'"
    )


def _print(entry: Entry, log: Path, holder: str | None, full: bool) -> None:
    now = time.time()
    tx = entry.tx
    head: list[tuple[str, str]] = [("transaction", entry.txid)]
    if tx is None:
        head.append(("state", "damaged (no record reads back)"))
    else:
        state = entry.state
        if entry.damage is not None:
            state = f"damaged; the readable records fold to {tx.state.value}"
        head.append(("state", state))
        head.append(("mode", tx.mode.value))
        age = format_age(now - tx.opened_at)
        head.append(("begun", f"{format_time(tx.opened_at)} ({age} ago)"))
        if tx.decided_at is not None:
            text = f"{words.word(tx.outcome)} at {format_time(tx.decided_at)}"
            text += f" (+{format_age(tx.decided_at - tx.opened_at)})"
            text += f" by {tx.actor}" if tx.actor else ""
            text += f": {tx.reason}" if tx.reason else ""
            head.append(("decided", text))
        if tx.ended:
            head.append(("finished", format_time(tx.updated_at)))
        else:
            head.append(("last record", f"{format_age(now - tx.updated_at)} ago"))
        if entry.damage is None:
            for item in in_doubt_of(entry):
                head.append((item.status, pending_text(item, txid=False)))
        hint = _next_step(tx, log, holder)
        if entry.damage is not None:
            hint = (
                f"run `dtc verify {log}`; `dtc repair {log} {entry.txid}` drops it, keeping "
                "evidence"
            )
        if hint:
            head.append(("next", hint))
    width = max(len(k) for k, _ in head)
    for key, value in head:
        click.echo(f"{key.ljust(width)}  {value}")
    if tx is not None:
        click.echo("")
        click.echo("participants (folded up to the damage)" if entry.damage else "participants")
        rows = []
        for m in tx.members:
            note = m.error or ""
            if m.resolution is not None:
                res = m.resolution
                note = f"resolved {words.word(res.outcome)} by {res.actor}: {res.reason} {note}"
            note_text, _ = value_text(note, full=full) if note else ("-", False)
            factory = m.factory or "(object)"
            rows.append([m.name, m.state.value, factory, str(m.attempts), note_text])
        for line in table(["NAME", "STATE", "FACTORY", "ATTEMPTS", "NOTE"], rows, "  "):
            click.echo(line)
    click.echo("")
    click.echo("timeline")
    names = entry.names()
    start = entry.opened_at
    rows = []
    cut = False
    for seq, record in enumerate(entry.stored.records):
        d = record_dict(record, seq, names)
        since = record.at - start if start is not None else None
        offset = (
            "-"
            if since is None
            else (f"+{since * 1000:.0f}ms" if 0 <= since < 1 else f"+{format_age(since)}")
        )
        fields = []
        for k, v in d.items():
            if k in _SKIP or v in (None, {}, []):
                continue
            text, abridged = value_text(v, full=full)
            cut |= abridged
            fields.append(f"{k}={text}")
        details = " ".join(fields)
        rows.append([str(seq), d["time"], offset, d["type"], d.get("participant", "-"), details])
    if entry.damage is not None:
        rows.append([str(len(entry.stored.records)), "?", "?", "DAMAGED", "-", entry.damage])
    headers = ["SEQ", "TIME", "SINCE BEGIN", "RECORD", "PARTICIPANT", "DETAILS"]
    for line in table(headers, rows, "  "):
        click.echo(line)
    if cut:
        click.echo(
            f"abridged: long values are shortened ([+N chars], [+N items], [+N bytes]); "
            f"`dtc show {log} {entry.txid} --full` prints them whole, `--json` as JSON"
        )


def run_show(log: Path, txid: str, full: bool, as_json: bool) -> None:
    with open_readonly(log) as opened:
        entry = find_entry(opened, txid)
    holder = lock_holder(log)
    problems = [entry.damage] if entry.damage else []
    if as_json:
        tx = entry.tx
        out: dict[str, Any] = (
            _view_dict(entry, tx) if tx is not None else {"txid": entry.txid, "state": entry.state}
        )
        if problems:
            out["replayed_state"] = tx.state.value if tx is not None else None
        pending = [] if entry.finished else in_doubt_of(entry)
        out["in_doubt"] = [in_doubt_dict(d) for d in pending if not d.awaiting_recovery]
        out["awaiting_recovery"] = [in_doubt_dict(d) for d in pending if d.awaiting_recovery]
        names = entry.names()
        out["records"] = [record_dict(r, i, names) for i, r in enumerate(entry.stored.records)]
        damage = entry.stored.damage
        if damage is not None:  # where reading stopped, as `dtc export` marks it
            out["records"].append({"seq": damage.seq, "damaged": str(damage)})
        out["problems"] = problems
        echo_json(out)
    else:
        _print(entry, log, holder, full)
        for problem in problems:
            click.echo(f"damaged: {problem}")
    if problems:
        raise CliError(
            f"transaction {entry.txid}: its records cannot all be read back or folded; run "
            f"`dtc verify {log}`",
            EXIT_ATTENTION,
        )
