"""``dtc backup``: a byte-exact copy of a log, taken under its directory lock before
anything changes (docs/recovery.md, "Repairing a damaged log"); also where such a copy
goes, for ``dtc repair`` too.

It refuses (exit code 3) while a live coordinator holds the log.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click

from .errors import CliError
from .options import json_option, log_argument

__all__ = ["backup", "backup_target"]


def _copy_without_lock(log: Path, dest: Path) -> Path:
    """``<log>/data.mdb`` copied byte for byte (and synced) into the new directory ``dest``."""
    dest.mkdir(parents=True, exist_ok=False)
    shutil.copyfile(log / "data.mdb", dest / "data.mdb")
    with open(dest / "data.mdb", "rb") as f:
        os.fsync(f.fileno())
    return dest


def backup_target(log: Path, target: Path | None, option: str) -> Path:
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
    """Copy a log before changing anything (the first step of a repair).

    The copy (LMDB's consistent copy of data.mdb) is taken under the log's directory lock,
    so no writer changes the log meanwhile, and is itself a log: `dtc verify` and `dtc
    show` read it. Keep it until the incident is closed. `dtc repair` takes one by itself
    too. Refuses (exit code 3) while a live coordinator holds the log: stop it first.

    A log in a directory this user cannot write (a copy, a mounted snapshot, another
    user's log) is copied without the lock, with a warning: a live writer could tear the
    copy. This is how to get a writable copy for the commands that write.

    \b
    Examples:
      dtc backup /var/lib/shop/dtc-log
      dtc backup /var/lib/shop/dtc-log --to /srv/evidence/dtc-log-incident-4711
      dtc verify "$(dtc backup /var/lib/shop/dtc-log --json | jq -r .backup)"
    """
    from .commands.backup import run_backup

    run_backup(log, target, as_json)
