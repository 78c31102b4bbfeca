"""``dtc recover``, ``dtc resolve`` and ``dtc compact`` on a format-2 log.

Recovery and resolution go through :class:`~dtc_wal.drivers.Engine` over
:class:`~dtc_wal.log.lmdb.LmdbLog`; compaction is ``LmdbLog.compact(before)``. Each opens
the log writable, taking its directory lock, so each refuses (exit code 3) while a live
coordinator holds it; dry runs open it read-only and work beside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ...drivers import Engine, EngineOptions
from ...drivers import report as words
from ...errors import UnknownTransactionError
from ...protocol import Outcome, Transaction
from ...protocol.records import Ended
from ...registry import ParticipantRegistry
from ..errors import CliError
from ..logs import require_log, require_writable, unknown_transaction
from ..maintenance import finish_recovery
from ..output import echo_json, format_age, format_bytes, format_time
from ..progress import progress_bar
from .reading import open_readonly, open_writable

__all__ = ["run_compact", "run_recover", "run_resolve"]


def run_recover(
    log: Path, registry: ParticipantRegistry | None, dry_run: bool, workers: int, as_json: bool
) -> None:
    """One recovery pass of the engine, driving ``workers`` transactions at once."""
    registry = registry if registry is not None else ParticipantRegistry()
    if not dry_run:
        require_writable(log, "recover")
    opening = open_readonly(log) if dry_run else open_writable(log)
    with (
        opening as opened,
        Engine(opened, registry, EngineOptions(recovery_workers=workers)) as engine,
        progress_bar("recovering", enabled=not dry_run) as update,
    ):
        report = engine.recover(progress=update, dry_run=dry_run)
        report.stale_readers_cleared = opened.stale_readers_cleared
    finish_recovery(report, log, dry_run=dry_run, as_json=as_json)


def _resolution_text(tx: Transaction, participant: str | None, log: Path) -> str:
    if participant is not None:
        member = next(m for m in tx.members if m.name == participant)
        told = words.word(member.resolution.outcome) if member.resolution else "?"
        done = f"{participant} resolved {told}"
    else:
        done = f"decided {words.word(tx.outcome) or '?'}"
    pending = ", ".join(tx.members[i].name for i in tx.pending())
    rest = ""
    if pending and not tx.ended:
        rest = (
            f"; still pending: {pending} -- `dtc recover {log} --registry MODULE:ATTRIBUTE` "
            "delivers the decision"
        )
    return f"{tx.txid}: {done}; the transaction is now {tx.state.value}{rest}"


def run_resolve(
    log: Path,
    txid: str,
    outcome: str | None,
    participant: str | None,
    reason: str,
    heuristic: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    if outcome is None:
        raise click.UsageError("say what to record: --commit or --abort")
    if not reason.strip():
        raise click.BadParameter("say why; the reason is written to the log", param_hint="--reason")
    require_writable(log, "resolve")
    decided = Outcome.COMMIT if outcome == "commit" else Outcome.ABORT
    with open_writable(log) as opened, Engine(opened) as engine:
        try:
            tx = engine.resolve(
                txid,
                decided,
                reason=reason,
                member=participant,
                actor=actor,
                heuristic=heuristic,
            )
        except UnknownTransactionError:
            raise unknown_transaction(txid, log) from None
    if as_json:
        echo_json(
            {
                "txid": tx.txid,
                "state": tx.state.value,
                "outcome": words.word(tx.outcome),
                "pending": [tx.members[i].name for i in tx.pending()],
            }
        )
    else:
        click.echo(_resolution_text(tx, participant, log))


def _counts(opened: Any, cutoff: float) -> dict[str, int]:
    """What compaction at ``cutoff`` removes and keeps, read through the log."""
    out = {"transactions_removed": 0, "records_removed": 0, "finished_kept": 0}
    unfinished = 0
    for stored in opened.transactions():
        if not stored.finished:
            unfinished += 1
            continue
        last = stored.records[-1]
        if isinstance(last, Ended) and last.at < cutoff:
            out["transactions_removed"] += 1
            out["records_removed"] += len(stored.records)
        else:
            out["finished_kept"] += 1
    out["unfinished_kept"] = unfinished
    return out


def run_compact(log: Path, keep: float, copy: bool | None, dry_run: bool, as_json: bool) -> None:
    """Delete finished transactions whose ``Ended`` is older than ``keep``; format 2 never
    copies the file (LMDB reuses the freed pages)."""
    if copy:
        raise CliError(
            f"{log} is in log format 2, whose compaction does not copy the file (LMDB "
            "reuses the freed pages): run without --copy"
        )
    require_log(log)  # before anything reads (or, writing, would create) the directory
    if not dry_run:
        require_writable(log, "compact")
    cutoff = time.time() - keep
    before = (log / "data.mdb").stat().st_size
    if dry_run:
        with open_readonly(log) as opened:
            counts = _counts(opened, cutoff)
            info = opened.info()
    else:
        with open_writable(log) as opened:
            counts = _counts(opened, cutoff)
            done = opened.compact(cutoff)
            counts["transactions_removed"] = done.transactions
            counts["records_removed"] = done.records
            info = opened.info()
    report: dict[str, Any] = {
        "path": str(log),
        "keep": keep,
        "cutoff": cutoff,
        "dry_run": dry_run,
        **counts,
        "copied": False,
        "file_bytes_before": before,
        "file_bytes_after": info.size,
        "free_bytes": max(0, info.size - info.map_used),
        "freed_bytes": max(0, before - info.size),
    }
    if as_json:
        echo_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {report['transactions_removed']} finished transaction(s) "
        f"({report['records_removed']} record(s)); kept {report['finished_kept']} finished and "
        f"{report['unfinished_kept']} unfinished: finished before {format_time(cutoff)} "
        f"(older than {format_age(keep)})"
    )
    if not dry_run:
        click.echo(
            f"file not copied (log format 2): {format_bytes(report['free_bytes'])} free of "
            f"{format_bytes(info.size)}, reused by later writes"
        )
