"""Opening a log for the CLI and finding things in it (read-only, safe beside a live
coordinator: LMDB readers never block the writer)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import LogError
from ..log.lmdb.directory import LOCK_FILE, DirectoryLock
from ..log.lmdb.read_only import reader_lock_available
from .errors import CliError

__all__ = [
    "lock_holder",
    "require_log",
    "require_writable",
    "unknown_transaction",
    "unwritable",
    "warn_if_lockless",
]

DAMAGED = "damaged"


def require_log(log: Path) -> None:
    """Refuse a directory that holds no log (commands that write would create one)."""
    if not (log / "data.mdb").exists():
        raise LogError(f"no log at {log}: give the directory a coordinator was opened on")


def warn_lockless(log: Path, done: str = "read without LMDB's lock file (lock.mdb)") -> None:
    """Say on stderr that the log is read (or copied) without a lock, and what that risks."""
    holder = lock_holder(log)
    writer = (
        f"a live coordinator holds it ({holder}), so"
        if holder
        else "a process writing to it cannot be ruled out, and if there is one"
    )
    click.echo(
        f"warning: {log} is read-only for this user, so it is {done}: {writer} the result "
        "may be a torn view, half before and half after a write. For a consistent view "
        "read it as a user who can write it, or a copy taken while no coordinator runs",
        err=True,
    )


def warn_if_lockless(log: Path) -> None:
    """:func:`warn_lockless` for commands that open the log through the library."""
    data = log / "data.mdb"
    if data.exists() and os.access(data, os.R_OK) and not reader_lock_available(log):
        warn_lockless(log)  # (an unreadable log: the open says so, without this warning)


def lock_holder(log: Path) -> str | None:
    """Who holds the log's directory lock (None: nobody); unreadable lock file: say so."""
    try:
        return DirectoryLock.holder(log)
    except OSError as exc:
        return f"unknown (cannot read {log}/coordinator.lock: {exc.strerror})"


def require_writable(log: Path, command: str) -> None:
    """Refuse a write command on a log this user cannot write, saying what to do."""
    blocked = [p for p in (log, *(log / n for n in _WRITTEN)) if unwritable(p)]
    if not blocked:
        return
    raise CliError(
        f"{log} is read-only for this user ({blocked[0]} is not writable), and `dtc "
        f"{command}` writes to the log. Run it as the user the coordinator runs as; or, if "
        f"{log} is a copy or a snapshot, copy it to a writable place first -- `dtc backup "
        f"{log} --to DIR` -- and run `dtc {command}` on DIR (the read-only log stays as it is)"
    )


_WRITTEN = ("data.mdb", "lock.mdb", LOCK_FILE)


def unwritable(path: Path) -> bool:
    """True when ``path`` exists and this user cannot write it (nor enter it, a directory)."""
    if not path.exists():
        return False
    return not os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0))


def unknown_transaction(txid: str, log: Path) -> CliError:
    return CliError(
        f"unknown transaction {txid!r} in {log}: `dtc list {log}` shows the transactions "
        "it holds (finished ones may have been removed by `dtc compact`)"
    )
