"""Read-only inspection: ``dtc status``, ``dtc list``, ``dtc show``.

All three open the log read-only (an LMDB reader) and work while a live coordinator runs.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidTransitionError, LogCorruptError
from ..history import TransactionView
from ..records import LogRecord, decode_record, lsn_key
from ..recovery import InDoubt, in_doubt_of
from ..states import TxState
from ..wal.store import DirectoryLock
from .durations import DURATION
from .errors import EXIT_ATTENTION, CliError, one_line
from .logs import find_txid, open_readonly, summaries, unfinished_views
from .options import json_option, log_argument
from .output import echo_json, format_age, format_bytes, format_time, table, to_jsonable

__all__ = ["list_transactions", "show", "status"]

UNFINISHED_STATES = (TxState.ACTIVE, TxState.DECIDED_COMMIT, TxState.DECIDED_ABORT)
FINISHED_STATES = (TxState.COMMITTED, TxState.ABORTED)
STATE_CHOICES = [s.value for s in TxState] + ["unfinished", "finished"]
_IN_DOUBT_SHOWN = 10


def _holder_text(holder: str | None) -> str:
    return holder if holder else "none (no coordinator holds the log)"


def _in_doubt_dict(item: InDoubt) -> dict[str, Any]:
    return {
        "txid": item.txid,
        "participant": item.participant,
        "outcome": item.outcome,
        "state": item.state,
        "error": item.error,
        "attempts": item.attempts,
    }


# -- status --------------------------------------------------------------------------------


@click.command()
@log_argument
@json_option
def status(log: Path, as_json: bool) -> None:
    """Summarize a log: counts by state, oldest unfinished transaction, in doubt, size.

    Also says whether a live coordinator holds the log. Read-only: safe to run while the
    coordinator is working.

    \b
    Examples:
      dtc status /var/lib/shop/dtc-log
      dtc status /var/lib/shop/dtc-log --json | jq .unfinished
    """
    now = time.time()
    with open_readonly(log) as store:
        counts = store.counts()
        by_state = collections.Counter(str(s.get("s")) for _, s in summaries(store))
        views = unfinished_views(store)
        used, map_size, last_lsn = store.used_bytes(), store.map_size, store.last_lsn
    holder = DirectoryLock.holder(log)
    file_bytes = (log / "data.mdb").stat().st_size
    in_doubt = in_doubt_of(views)
    oldest = views[0] if views else None
    ordered_states = {s.value: by_state[s.value] for s in TxState if by_state[s.value]}
    if as_json:
        echo_json(
            {
                "log": str(log),
                "live_coordinator": holder,
                "last_lsn": last_lsn,
                "records": counts["records"],
                "transactions": counts["transactions"],
                "by_state": ordered_states,
                "unfinished": counts["unfinished"],
                "oldest_unfinished": None
                if oldest is None
                else {
                    "txid": oldest.txid,
                    "state": oldest.state.value,
                    "created_at": oldest.created_at,
                    "age_seconds": round(now - oldest.created_at, 3),
                },
                "in_doubt": [_in_doubt_dict(d) for d in in_doubt],
                "file_bytes": file_bytes,
                "used_bytes": used,
                "map_size": map_size,
            }
        )
        return
    states = ", ".join(f"{n} {s}" for s, n in ordered_states.items())
    lines = [
        ("log", str(log)),
        ("live coordinator", _holder_text(holder)),
        ("last LSN", str(last_lsn)),
        ("records", str(counts["records"])),
        ("transactions", f"{counts['transactions']}" + (f": {states}" if states else "")),
    ]
    unfinished = str(counts["unfinished"])
    if oldest is not None:
        unfinished += (
            f" (oldest: {oldest.txid}, {oldest.state.value}, begun "
            f"{format_age(now - oldest.created_at)} ago)"
        )
    lines.append(("unfinished", unfinished))
    txids = {d.txid for d in in_doubt}
    lines.append(("in doubt", f"{len(in_doubt)} participant(s) in {len(txids)} transaction(s)"))
    details = [f"  {item}" for item in in_doubt[:_IN_DOUBT_SHOWN]]
    if len(in_doubt) > _IN_DOUBT_SHOWN:
        more = len(in_doubt) - _IN_DOUBT_SHOWN
        details.append(f"  ... {more} more: dtc list {log} --state unfinished")
    lines.extend(("", line) for line in details)
    share = f"{100 * used / map_size:.1f}%" if map_size else "?"
    lines.append(
        (
            "size",
            f"file {format_bytes(file_bytes)}, used {format_bytes(used)} of a "
            f"{format_bytes(map_size)} map ({share})",
        )
    )
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")
    if holder and in_doubt:
        click.echo(
            "note: a live coordinator holds this log; unfinished transactions may still be "
            "in progress there"
        )


# -- list ----------------------------------------------------------------------------------


def _wanted_states(states: tuple[str, ...]) -> set[str]:
    wanted: set[str] = set()
    for state in states:
        if state == "unfinished":
            wanted.update(s.value for s in UNFINISHED_STATES)
        elif state == "finished":
            wanted.update(s.value for s in FINISHED_STATES)
        else:
            wanted.add(state)
    return wanted


def _participants_text(parts: Any) -> str:
    if not isinstance(parts, dict) or not parts:
        return "-"
    return " ".join(f"{name}={state}" for name, state in parts.items())


@click.command("list")
@log_argument
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATE_CHOICES),
    help="Only transactions in this state; repeat for several. 'unfinished' means active, "
    "decided-commit or decided-abort; 'finished' means committed or aborted.",
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

    Columns: transaction id, state, mode (2pc or saga), when it began, its age, and each
    participant's state.

    \b
    Examples:
      dtc list /var/lib/shop/dtc-log --state unfinished
      dtc list /var/lib/shop/dtc-log --state decided-commit --older-than 10m
      dtc list /var/lib/shop/dtc-log --state aborted --limit 20 --json
    """
    now = time.time()
    wanted = _wanted_states(states)
    only_unfinished = bool(wanted) and wanted <= {s.value for s in UNFINISHED_STATES}
    rows: list[tuple[str, dict[str, Any]]] = []
    with open_readonly(log) as store:
        for txid, summary in summaries(store, unfinished_only=only_unfinished):
            if wanted and summary.get("s") not in wanted:
                continue
            created = float(summary.get("c") or 0.0)
            if older_than is not None and now - created < older_than:
                continue
            rows.append((txid, summary))
    rows.sort(key=lambda item: (float(item[1].get("c") or 0.0), item[1].get("l", [0])[:1]))
    more = 0
    if limit is not None and len(rows) > limit:
        more, rows = len(rows) - limit, rows[:limit]
    if as_json:
        echo_json(
            [
                {
                    "txid": txid,
                    "state": s.get("s"),
                    "mode": s.get("m"),
                    "created_at": s.get("c"),
                    "updated_at": s.get("u"),
                    "age_seconds": round(now - float(s.get("c") or 0.0), 3),
                    "records": len(s.get("l") or []),
                    "participants": s.get("p") or {},
                }
                for txid, s in rows
            ]
        )
        return
    if not rows:
        click.echo(f"no matching transactions in {log}", err=True)
        return
    body = [
        [
            txid,
            str(s.get("s")),
            str(s.get("m") or "-"),
            format_time(s.get("c")),
            format_age(now - float(s.get("c") or 0.0)),
            _participants_text(s.get("p")),
        ]
        for txid, s in rows
    ]
    for line in table(["TXID", "STATE", "MODE", "BEGUN", "AGE", "PARTICIPANTS"], body):
        click.echo(line)
    if more:
        click.echo(f"... {more} more (raise --limit to see them)", err=True)


# -- show ----------------------------------------------------------------------------------

_DETAIL_FIELDS = (
    "outcome",
    "reason",
    "error",
    "attempts",
    "actor",
    "factory",
    "order",
    "mode",
    "params",
    "data",
)


def _value_text(value: Any) -> str:
    value = to_jsonable(value)
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in '="' for c in value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _details(record: LogRecord) -> str:
    return " ".join(
        f"{name}={_value_text(getattr(record, name))}"
        for name in _DETAIL_FIELDS
        if getattr(record, name) is not None
    )


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


def _replay_until_refused(
    records: list[tuple[int, LogRecord]],
) -> tuple[TransactionView | None, str | None]:
    """The view from as many records as the transition table accepts, and why it stopped
    (a damaged record usually leaves a gap that the next record cannot follow)."""
    view: TransactionView | None = None
    for lsn, record in records:
        try:
            if view is None:
                view = TransactionView.begin(record, lsn)
            else:
                view.apply(record, lsn)
        except InvalidTransitionError as exc:
            return view, f"replay stopped at LSN {lsn}: {one_line(exc)}"
    return view, None


def _next_step(view: TransactionView, log: Path, holder: str | None) -> str | None:
    if view.state.finished:
        return None
    if holder:
        return "a live coordinator holds the log: it finishes this transaction by itself"
    if view.state is TxState.ACTIVE:
        return (
            "no decision in the log: recovery will presume abort and roll it back -- "
            f"dtc recover {log} --registry MODULE:ATTRIBUTE"
        )
    outcome = view.outcome.value if view.outcome else "?"
    pending = [p.name for p in view.pending()]
    who = f" --participant {pending[0]}" if len(pending) == 1 else ""
    return (
        f"decided {outcome}; still to be told: {', '.join(pending)}. Run "
        f"`dtc recover {log} --registry MODULE:ATTRIBUTE` once they are reachable, or settle "
        f"them by hand and record it: dtc resolve {log} {view.txid} "
        f"--{'commit' if outcome == 'commit' else 'abort'}{who} --reason '...'"
    )


@click.command()
@log_argument
@click.argument("txid")
@json_option
def show(log: Path, txid: str, as_json: bool) -> None:
    """Show one transaction's full timeline: every record with its time and details.

    TXID may be abbreviated to any unique prefix. The header says where the transaction
    stands and what to do next; the timeline lists every record (LSN, time, time since
    begin, type, participant, outcome, error, reason, actor, data).

    \b
    Examples:
      dtc show /var/lib/shop/dtc-log 5f0c2a1e-8d4b-4c1e-9a57-0b6d1f3e2c10
      dtc show /var/lib/shop/dtc-log 5f0c2a1e
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
    holder = DirectoryLock.holder(log)
    good = [(lsn, rec) for lsn, rec, _ in entries if rec is not None]
    problems = [damage for _, rec, damage in entries if rec is None and damage]
    view, refused = _replay_until_refused(good)
    if refused:
        problems.append(refused)
    if as_json:
        out: dict[str, Any] = (
            _view_dict(view) if view else {"txid": txid, "state": summary.get("s")}
        )
        if problems:  # the replay stopped early: the index knows where it really stands
            out["replayed_state"] = view.state.value if view else None
            out["state"] = summary.get("s")
        out["in_doubt"] = [_in_doubt_dict(d) for d in in_doubt_of([view])] if view else []
        out["records"] = [_record_dict(lsn, rec, damage) for lsn, rec, damage in entries]
        out["problems"] = problems
        echo_json(out)
    else:
        _print_show(log, txid, view, summary, entries, holder, damaged=bool(problems))
        for problem in problems:
            click.echo(f"damaged: {problem}")
    if problems:
        raise CliError(
            f"transaction {txid}: {len(problems)} problem(s) reading its records; run "
            f"`dtc verify {log}`",
            EXIT_ATTENTION,
        )


def _offset(seconds: float) -> str:
    """Time since the transaction began: milliseconds below a second, even for zero."""
    return f"+{seconds * 1000:.0f}ms" if 0 <= seconds < 1 else f"+{format_age(seconds)}"


def _print_show(
    log: Path,
    txid: str,
    view: TransactionView | None,
    summary: dict[str, Any],
    entries: list[tuple[int, LogRecord | None, str | None]],
    holder: str | None,
    *,
    damaged: bool,
) -> None:
    now = time.time()
    head: list[tuple[str, str]] = [("transaction", txid)]
    if view is None:
        head.append(("state", f"{summary.get('s')} (per the index; records unreadable)"))
    else:
        state = view.state.value
        if damaged:
            state = (
                f"{summary.get('s')} per the index; the records are damaged and replay only "
                f"to LSN {view.lsns[-1]} ({view.state.value})"
            )
        head.append(("state", state))
        head.append(("mode", view.mode.value if view.mode else "-"))
        head.append(
            (
                "begun",
                f"{format_time(view.created_at)} ({format_age(now - view.created_at)} ago)",
            )
        )
        if view.decided_at is not None:
            outcome = view.outcome.value if view.outcome else "?"
            text = f"{outcome} at {format_time(view.decided_at)}"
            text += f" (+{format_age(view.decided_at - view.created_at)})"
            if view.decided_by:
                text += f" by {view.decided_by}"
            if view.reason:
                text += f": {view.reason}"
            head.append(("decided", text))
        if view.state.finished:
            head.append(("finished", format_time(view.updated_at)))
        else:
            head.append(("last record", f"{format_age(now - view.updated_at)} ago"))
        for item in [] if damaged else in_doubt_of([view]):
            head.append(
                (
                    "in doubt",
                    f"{item.participant}: needs {item.outcome or 'a decision'}, "
                    f"{item.attempts} attempt(s), last error: {item.error or 'none'}",
                )
            )
        hint = _next_step(view, log, holder)
        if damaged:
            hint = f"run `dtc verify {log}` and see docs/recovery.md (repair) before acting on it"
        if hint:
            head.append(("next", hint))
    width = max(len(k) for k, _ in head)
    for key, value in head:
        click.echo(f"{key.ljust(width)}  {value}")
    if view is not None and view.participants:
        click.echo("")
        click.echo("participants (replayed up to the damage)" if damaged else "participants")
        rows = []
        for p in view.ordered():
            note = p.last_error or ""
            if p.resolution is not None:
                note = f"resolved {p.resolution.value} by {p.resolved_by or '?'}: {note}"
            rows.append(
                [p.name, p.state.value, p.factory or "(object)", str(p.attempts), note or "-"]
            )
        for line in table(["NAME", "STATE", "FACTORY", "ATTEMPTS", "NOTE"], rows, "  "):
            click.echo(line)
    click.echo("")
    click.echo("timeline")
    start = view.created_at if view is not None else None
    rows = []
    for lsn, record, damage in entries:
        if record is None:
            rows.append([str(lsn), "?", "?", "DAMAGED", "-", damage or ""])
            continue
        since = _offset(record.at - start) if start is not None else "-"
        rows.append(
            [
                str(lsn),
                format_time(record.at),
                since,
                record.type.name.lower().replace("_", "-"),
                record.participant or "-",
                _details(record),
            ]
        )
    headers = ["LSN", "TIME", "SINCE BEGIN", "RECORD", "PARTICIPANT", "DETAILS"]
    for line in table(headers, rows, "  "):
        click.echo(line)
