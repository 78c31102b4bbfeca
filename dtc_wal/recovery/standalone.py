"""``recover(log_path, registry)``: one recovery pass for tools, without a coordinator."""

from __future__ import annotations

import os
from collections.abc import Callable

from ..registry import ParticipantRegistry
from .report import RecoveryReport

__all__ = ["recover"]


def recover(
    log_path: str | os.PathLike[str],
    registry: ParticipantRegistry,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 8,
) -> RecoveryReport:
    """Run one recovery pass over the log at ``log_path`` and return what happened.

    Takes the log's lock (raises :class:`~dtc_wal.errors.LogLockedError` while a live
    coordinator holds it -- that coordinator recovers by itself). With ``dry_run`` nothing
    is written, built or called: the report says what a pass would do, and the log may be
    in use. ``progress(done, total)`` is called after each transaction; ``workers``
    transactions are driven at once (1: one after another).
    """
    from ..drivers import Engine, EngineOptions  # the drivers import this package's report
    from ..log.lmdb import LmdbLog

    options = EngineOptions(recovery_workers=workers)
    with LmdbLog(log_path, readonly=dry_run) as log, Engine(log, registry, options) as engine:
        report = engine.recover(progress=progress, dry_run=dry_run)
        report.stale_readers_cleared = log.stale_readers_cleared
    return report
