"""Repairing a damaged log: ``dtc backup`` and ``dtc repair`` (docs/recovery.md, "Repairing a
damaged log").

Both take the log's directory lock first, so both refuse (exit code 3) while a live
coordinator holds the log. ``repair`` keeps a byte-exact copy before it changes anything,
prints the evidence it collected, and says how to settle the dropped transaction's
participants by hand: the log no longer knows it, so recovery will not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ..errors import DtcError, TransactionStateError, UnknownTransactionError
from ..records import decode_record, lsn_key
from ..states import Mode, TxState
from ..wal.repair import RepairReport, backup_log, drop_transaction
from .errors import CliError
from .logs import decode_summary, open_readonly, require_log, unknown_transaction
from .options import json_option, log_argument
from .output import echo_json, format_bytes, format_time, table, to_jsonable

__all__ = ["backup", "repair"]


def _backup_target(log: Path, target: Path | None, option: str) -> Path:
    """``target``, which must not exist; by default ``<log>.damaged-<UTC time>`` next to the
    log, with ``-2``, ``-3``, ... when a backup was already taken in the same second."""
    if target is not None:
        if target.exists():
            raise CliError(
                f"{option} {target} already exists: give a directory that does not exist yet "
                "(a backup never overwrites anything)"
            )
        return target
    base = log if log.name not in ("", "..") else log.resolve()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    default = base.with_name(f"{base.name}.damaged-{stamp}")
    candidate, n = default, 2
    while candidate.exists():
        candidate, n = default.with_name(f"{default.name}-{n}"), n + 1
    return candidate


# -- backup --------------------------------------------------------------------------------


@click.command()
@log_argument
@click.option(
    "--to",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Where to put the copy; must not exist (default: LOG.damaged-<UTC time> next to the log).",
)
@json_option
def backup(log: Path, target: Path | None, as_json: bool) -> None:
    """Copy a log byte for byte before changing anything (the first step of a repair).

    The copy (data.mdb) is taken under the log's directory lock, so no writer changes the
    file meanwhile, and is itself a log: `dtc verify` and `dtc show` read it. Keep it
    until the incident is closed. `dtc repair` takes one by itself too. Refuses (exit
    code 3) while a live coordinator holds the log: stop it first.

    \b
    Examples:
      dtc backup /var/lib/shop/dtc-log
      dtc backup /var/lib/shop/dtc-log --to /srv/evidence/dtc-log-incident-4711
      dtc verify "$(dtc backup /var/lib/shop/dtc-log --json | jq -r .backup)"
    """
    require_log(log)
    copy = backup_log(log, _backup_target(log, target, "--to"))
    size = (copy / "data.mdb").stat().st_size
    if as_json:
        echo_json({"log": str(log), "backup": str(copy), "bytes": size})
        return
    click.echo(f"copied {log}/data.mdb ({format_bytes(size)}) to {copy}/data.mdb")
    click.echo(f"the copy is a log: `dtc verify {copy}` and `dtc show {copy} TXID` read it")


# -- repair: the evidence ------------------------------------------------------------------

_RECORD_STATES = {"enlisted": "enlisted", "prepared": "prepared"}
_OUTCOME_STATES = {"commit": "committed", "rollback": "rolled-back", "skip": "skipped"}
_PLAIN_FIELDS = ("type", "txid", "at", "participant", "lsn")


def _value_text(value: Any) -> str:
    value = to_jsonable(value)
    if isinstance(value, str) and value and not any(c.isspace() or c in '="' for c in value):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _details(record: dict[str, Any]) -> str:
    return " ".join(
        f"{name}={_value_text(value)}"
        for name, value in record.items()
        if name not in _PLAIN_FIELDS and value is not None
    )


def _lsn_text(lsns: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    parts: list[str] = []
    ordered = sorted(lsns)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)


def _participants(report: RepairReport) -> tuple[list[dict[str, Any]], str]:
    """Every participant the evidence names, in enlistment order, with its factory, params
    and last known state; and where those states come from."""
    found: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return found.setdefault(
            name,
            {"name": name, "order": None, "factory": None, "params": None, "state": None},
        )

    from_records: dict[str, str] = {}
    resolutions: dict[str, str] = {}
    for record in report.records:
        name = record.get("participant")
        if not isinstance(name, str):
            continue
        kind, outcome = record["type"], record.get("outcome")
        item = entry(name)
        if kind == "enlisted":
            item.update(
                order=record.get("order"),
                factory=record.get("factory"),
                params=record.get("params"),
            )
        if kind == "prepared" and outcome == "read-only":
            from_records[name] = "read-only"
        elif kind in _RECORD_STATES:
            from_records[name] = _RECORD_STATES[kind]
        elif kind == "acknowledged" and isinstance(outcome, str):
            from_records[name] = _OUTCOME_STATES.get(outcome, outcome)
        elif kind == "resolved":
            from_records[name] = "resolved"
            resolutions[name] = str(outcome)
    indexed = report.summary.get("p") if report.summary else None
    if isinstance(indexed, dict):
        source = "per the index"
        for name, state in indexed.items():
            entry(str(name))["state"] = str(state)
    else:
        source = "per the readable records; the index entry is damaged"
        for name, state in from_records.items():
            entry(name)["state"] = state
    for name, outcome in resolutions.items():
        if found[name]["state"] == "resolved":
            found[name]["state"] = f"resolved {outcome}"
    # The index lists participants in enlistment order; without it, the enlisted records'.
    position = {str(name): i for i, name in enumerate(indexed or {})}
    ordered = sorted(
        found.values(),
        key=lambda p: position.get(p["name"], len(position) + (p["order"] or 0)),
    )
    return ordered, source


def _mode(report: RepairReport) -> str | None:
    if report.summary and isinstance(report.summary.get("m"), str):
        return str(report.summary["m"])
    for record in report.records:
        if isinstance(record.get("mode"), str):
            return str(record["mode"])
    return None


def _settlement(report: RepairReport, participants: list[dict[str, Any]]) -> dict[str, Any]:
    """What the operator must tell the participants: commit when the evidence shows a commit
    decision or a participant that committed, otherwise roll back (presumed abort)."""
    state = report.summary.get("s") if report.summary else None
    commit: list[str] = []
    finished: str | None = None
    if state in (TxState.DECIDED_COMMIT.value, TxState.COMMITTED.value):
        commit.append(f"the index says {state}")
    if state in (TxState.COMMITTED.value, TxState.ABORTED.value):
        finished = f"the index says {state}"
    for record in report.records:
        kind, who = record["type"], record.get("participant")
        if kind == "decided-commit":
            commit.append(f"LSN {record['lsn']} decided-commit")
        elif kind in ("acknowledged", "resolved") and record.get("outcome") == "commit":
            commit.append(f"LSN {record['lsn']} {kind} commit by {who}")
        elif kind == "completed" and finished is None:
            finished = f"LSN {record['lsn']} completed"
    for p in participants:
        if p["state"] in ("committed", "resolved commit"):
            commit.append(f"{p['name']} {p['state']}")
    done = (
        {"committed", "read-only", "resolved commit"}
        if commit
        else {"rolled-back", "skipped", "read-only", "resolved rollback", "resolved skip"}
    )
    return {
        "outcome": "commit" if commit else "rollback",
        "evidence": list(dict.fromkeys(commit)),
        "finished": finished,
        "to_check": [p["name"] for p in participants if p["state"] not in done],
        "mode": _mode(report),
    }


def _first_step(settle: dict[str, Any]) -> str:
    outcome = settle["outcome"]
    if settle["finished"]:
        return (
            f"nothing should be left to settle: the transaction had finished "
            f"({settle['finished']}), so every participant was told {outcome}; check them "
            "if in doubt"
        )
    saga = settle["mode"] == Mode.SAGA.value
    names = list(reversed(settle["to_check"])) if saga else settle["to_check"]
    listed = ", ".join(names) or "none by the evidence; check them all"
    if outcome == "commit":
        why = "the evidence shows a commit: " + "; ".join(settle["evidence"])
        if saga:
            what = "leave its steps as they are (they ran before the decision): compensate none"
        else:
            what = f"commit it in every participant that has not committed yet ({listed})"
    else:
        why = "no readable commit decision and no participant committed: presumed abort"
        if saga:
            what = f"compensate every step that may have run, last step first ({listed})"
        else:
            what = f"roll it back in every participant that has not rolled back yet ({listed})"
    return (
        "settle the participants by hand -- the log no longer knows this transaction, so "
        f"recovery will not: {what}; {why}"
    )


def _next_steps(log: Path, report: RepairReport, settle: dict[str, Any]) -> list[str]:
    steps = [_first_step(settle)]
    if report.summary is None and report.damaged:
        steps.append(
            "the index entry was damaged: the damaged records may name more participants "
            f"than listed here; `dtc export {report.backup}` shows their raw bytes"
        )
    steps.append(
        f"start the coordinator: it recovers the rest of the log (`dtc verify {log}` is "
        "clean again)"
    )
    steps.append(f"keep the backup {report.backup} until the incident is closed")
    return steps


def _print_repair(
    report: RepairReport, participants: list[dict[str, Any]], source: str, steps: list[str]
) -> None:
    summary = report.summary
    state = f"{summary.get('s')} per the index" if summary else "unknown (index entry damaged)"
    if summary:
        state += (
            f"; mode {summary.get('m') or '-'}, begun {format_time(summary.get('c'))}, "
            f"last written {format_time(summary.get('u'))}"
        )
    head = [
        ("backup", f"{report.backup} (the log as it was before the repair)"),
        ("transaction", report.txid),
        ("state", state),
    ]
    for lsn, why in sorted(report.damaged.items()):
        head.append(("damaged", f"{'index entry' if lsn == 0 else f'LSN {lsn}'}: {why}"))
    head.append(
        (
            "removed",
            f"LSN {_lsn_text(report.removed_lsns)} and the transaction's index entries",
        )
    )
    width = max(len(k) for k, _ in head)
    for key, value in head:
        click.echo(f"{key.ljust(width)}  {' '.join(value.split())}")
    click.echo("")
    click.echo(f"participants (last state {source})")
    if participants:
        rows = [
            [
                p["name"],
                p["state"] or "?",
                p["factory"] or ("?" if p["order"] is None else "(object)"),
                "?" if p["order"] is None else _value_text(p["params"] or "-"),
            ]
            for p in participants
        ]
        for line in table(["NAME", "LAST STATE", "FACTORY", "PARAMS"], rows, "  "):
            click.echo(line)
        if any(p["order"] is None for p in participants):
            click.echo("  (?: its enlisted record is damaged; the backup keeps its raw bytes)")
    else:
        click.echo("  none readable")
    click.echo("")
    click.echo("readable records (removed from the log; the backup keeps them)")
    rows = [
        [
            str(r["lsn"]),
            format_time(r.get("at")),
            str(r["type"]),
            str(r.get("participant") or "-"),
            _details(r),
        ]
        for r in report.records
    ]
    if rows:
        for line in table(["LSN", "TIME", "RECORD", "PARTICIPANT", "DETAILS"], rows, "  "):
            click.echo(line)
    else:
        click.echo("  none")
    click.echo("")
    click.echo("next")
    for number, step in enumerate(steps, 1):
        click.echo(f"  {number}. {step}")


# -- repair: the command -------------------------------------------------------------------


def _check_extra_lsns(log: Path, txid: str, lsns: tuple[int, ...]) -> None:
    """Refuse an --lsn that belongs to another transaction: repair would delete it."""
    if not lsns:
        return
    wanted = set(lsns)
    hint = f"give only the damaged LSNs `dtc verify {log}` names for {txid}"
    with open_readonly(log) as store:
        with store.reader() as txn:
            for lsn in sorted(wanted):
                raw = txn.get(lsn_key(lsn), db=store.records)
                if raw is None:
                    continue
                try:
                    record = decode_record(bytes(raw), lsn)
                except DtcError:
                    continue
                if record.txid != txid:
                    raise CliError(
                        f"--lsn {lsn} is a readable record of transaction {record.txid}, "
                        f"not of {txid}: {hint}"
                    )
        for other, raw_summary in store.iter_summaries():
            if other == txid:
                continue
            try:
                listed = decode_summary(other, raw_summary).get("l") or []
            except DtcError:
                continue
            claimed = sorted(wanted.intersection(n for n in listed if isinstance(n, int)))
            if claimed:
                raise CliError(
                    f"--lsn {claimed[0]} belongs to transaction {other} (its index entry lists "
                    f"it), not to {txid}: {hint}"
                )


@click.command()
@log_argument
@click.argument("txid")
@click.option(
    "--lsn",
    "lsns",
    type=click.IntRange(min=1),
    multiple=True,
    metavar="N",
    help="A damaged record of this transaction that its index entry does not list (when "
    "the index entry is damaged too; `dtc verify` names it). Repeat for several.",
)
@click.option(
    "--backup-to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Where to keep the copy taken first; must not exist (default: "
    "LOG.damaged-<UTC time> next to the log).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Drop the transaction even though it is not damaged (recovery could finish it).",
)
@json_option
def repair(
    log: Path,
    txid: str,
    lsns: tuple[int, ...],
    backup_to: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Drop a damaged transaction from a log so that the coordinator starts again.

    A damaged record in an unfinished transaction stops the coordinator's start-up (run
    `dtc verify` to find it). This command takes a byte-exact copy of the log first (as
    `dtc backup`), prints the evidence -- the index summary, the participants with their
    factories, params and last known states, every readable record, the damaged LSNs --
    then removes the transaction's records and index entries in one LMDB transaction.
    TXID is the full transaction id, as `dtc verify` prints it.

    The log then no longer knows the transaction, so recovery will not settle it: settle
    its participants by hand from the evidence (commit when it shows a commit decision or
    a participant that committed, otherwise roll back -- presumed abort), then start the
    coordinator. --json prints the same evidence for scripts and tickets.

    Refuses a transaction that is not damaged (recovery can finish it) unless --force, and
    refuses (exit code 3) while a live coordinator holds the log: stop it first.

    \b
    Examples:
      dtc repair /var/lib/shop/dtc-log 5f0c2a1e-8d4b-4c1e-9a57-0b6d1f3e2c10
      dtc repair /var/lib/shop/dtc-log 5f0c2a1e-8d4b-4c1e-9a57-0b6d1f3e2c10 --lsn 4711 \\
          --backup-to /srv/evidence/incident-4711 --json > incident-4711.json
    """
    require_log(log)
    _check_extra_lsns(log, txid, lsns)
    target = _backup_target(log, backup_to, "--backup-to")
    try:
        report = drop_transaction(log, txid, extra_lsns=lsns, backup_to=target, force=force)
    except UnknownTransactionError:
        raise unknown_transaction(txid, log) from None
    except TransactionStateError:
        raise CliError(
            f"transaction {txid} is not damaged: its records read and replay, so recovery "
            f"can finish it (start the coordinator, or `dtc recover {log} --registry "
            "MODULE:ATTRIBUTE`); pass --force to drop it anyway"
        ) from None
    participants, source = _participants(report)
    settle = _settlement(report, participants)
    steps = _next_steps(log, report, settle)
    if as_json:
        echo_json(
            {
                **report.to_dict(),
                "damaged": [
                    {"lsn": lsn, "reason": why} for lsn, why in sorted(report.damaged.items())
                ],
                "participants": participants,
                "participant_states": source,
                "settle": settle,
                "next": steps,
            }
        )
    else:
        _print_repair(report, participants, source, steps)
