"""``recover(log_path, registry)``: one recovery pass for tools, and in-doubt listing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ..history import TransactionView
from ..registry import ParticipantRegistry
from ..wal.store import LogStore
from ..wal.unfinished import Damage, load_unfinished
from .engine import plan
from .report import InDoubt, RecoveryReport, damage_in_doubt

__all__ = ["in_doubt_of", "recover"]


def recover(
    log_path: str | os.PathLike[str],
    registry: ParticipantRegistry,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **coordinator_options: Any,
) -> RecoveryReport:
    """Run one recovery pass over the log at ``log_path`` and return what happened.

    Takes the log's lock (raises :class:`~dtc_wal.errors.LogLockedError` while a live
    coordinator holds it -- that coordinator recovers by itself). With ``dry_run`` nothing is
    written or called: the report says what a pass would do, and the log may be in use.
    """
    if dry_run:
        store = LogStore(log_path, readonly=True)
        try:
            views, damaged = load_unfinished(store)
        finally:
            store.close()
        return plan(views, registry, damaged)
    from ..coordinator.core import TransactionCoordinator

    options = {
        "recovery_interval": None,
        "zombie_timeout": None,
        **coordinator_options,
        "recover": False,  # the pass runs below, with progress
    }
    coordinator = TransactionCoordinator(log_path, registry=registry, **options)
    try:
        report = coordinator.recover_now(progress=progress)
        report.stale_readers_cleared = coordinator.wal.store.stale_readers_cleared
        return report
    finally:
        coordinator.close()


NOT_REBUILDABLE = (
    "enlisted as an object, not through a registry factory: recovery cannot rebuild it; "
    "settle it by hand and record that with `dtc resolve`"
)


def in_doubt_of(views: Iterable[TransactionView], damaged: Iterable[Damage] = ()) -> list[InDoubt]:
    """Every pending participant of the given unfinished transactions, then one entry per
    damaged transaction (:func:`~dtc_wal.recovery.report.damage_in_doubt`).

    A participant that was tried (a ``failed`` record) or cannot be rebuilt is in doubt;
    one that recovery has not tried yet since the transaction was left unfinished (a
    crash, an operator's new decision) is ``awaiting_recovery``.
    """
    out: list[InDoubt] = []
    for view in views:
        if view.state.finished:
            continue
        outcome = view.outcome.value if view.outcome else None
        members = view.pending() if view.state.decided else view.ordered()
        for p in members:
            error = p.last_error or (None if p.recoverable else NOT_REBUILDABLE)
            awaiting = p.attempts == 0 and error is None
            out.append(
                InDoubt(
                    view.txid,
                    p.name,
                    outcome,
                    p.state.value,
                    error,
                    p.attempts,
                    awaiting_recovery=awaiting,
                )
            )
    out.extend(damage_in_doubt(d) for d in damaged)
    return out
