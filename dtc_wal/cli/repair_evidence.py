"""What the evidence of a ``dtc repair`` says: the dropped transaction's participants and
their last known states, the outcome to settle them with, and the operator's next steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..states import Mode, TxState
from ..wal.repair import RepairReport

__all__ = ["next_steps", "participants_of", "settlement"]

_RECORD_STATES = {"enlisted": "enlisted", "prepared": "prepared"}
_OUTCOME_STATES = {"commit": "committed", "rollback": "rolled-back", "skip": "skipped"}


def participants_of(report: RepairReport) -> tuple[list[dict[str, Any]], str]:
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


def settlement(report: RepairReport, participants: list[dict[str, Any]]) -> dict[str, Any]:
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


def next_steps(log: Path, report: RepairReport, settle: dict[str, Any]) -> list[str]:
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
