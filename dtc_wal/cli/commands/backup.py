"""``dtc backup`` on a format-2 log: LMDB's consistent copy, under the directory lock,
checked to open as a format-2 log (``dtc verify`` reads it)."""

from __future__ import annotations

from pathlib import Path

import click

from ...log.lmdb.directory import LOCK_FILE
from ...log.lmdb.repair import backup_log
from ..backup import _copy_without_lock, backup_target
from ..logs import require_log, unwritable, warn_lockless
from ..output import echo_json, format_bytes

__all__ = ["run_backup"]


def run_backup(log: Path, target: Path | None, as_json: bool) -> None:
    require_log(log)
    dest = backup_target(log, target, "--to")
    locked = not any(unwritable(p) for p in (log, log / LOCK_FILE))
    if locked:
        copy = backup_log(log, dest)
    else:  # the lock cannot be taken in a read-only directory: copy the file as it is
        warn_lockless(log, "copied without taking its directory lock")
        copy = _copy_without_lock(log, dest)
    size = (copy / "data.mdb").stat().st_size
    if as_json:
        echo_json({"log": str(log), "backup": str(copy), "bytes": size, "locked": locked})
        return
    click.echo(f"copied {log} ({format_bytes(size)}, log format 2) to {copy}/data.mdb")
    click.echo(f"the copy is a log: `dtc verify {copy}` and `dtc show {copy} TXID` read it")
