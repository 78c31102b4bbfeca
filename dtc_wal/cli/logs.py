"""Opening a log for the CLI and finding things in it (read-only, safe beside a live
coordinator: LMDB readers never block the writer)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import LogCorruptError, LogError
from ..history import TransactionView
from ..records import unframe, unpack
from ..wal.directory import LOCK_FILE, DirectoryLock
from ..wal.read_only import reader_lock_available
from ..wal.store import LogStore
from ..wal.unfinished import Damage, load_unfinished
from .errors import CliError

__all__ = [
    "find_txid",
    "lock_holder",
    "open_readonly",
    "require_log",
    "require_writable",
    "summaries",
    "unfinished_views",
    "unknown_transaction",
    "unwritable",
    "warn_if_lockless",
]

Summary = dict[str, Any]
DAMAGED = "damaged"


def require_log(log: Path) -> None:
    """Refuse a directory that holds no log (commands that write would create one)."""
    if not (log / "data.mdb").exists():
        raise LogError(f"no log at {log}: give the directory a coordinator was opened on")


def open_readonly(log: Path) -> LogStore:
    """The log, read-only (a context manager); LMDB errors become LogError. A log this
    process cannot write is read without LMDB's lock file, with a warning on stderr."""
    store = LogStore(log, readonly=True)
    if store.lockless:
        warn_lockless(log)
    return store


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
    if (log / "data.mdb").exists() and not reader_lock_available(log):
        warn_lockless(log)


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


def decode_summary(txid: str, raw: bytes) -> Summary:
    summary = unpack(unframe(raw, what=f"summary of {txid}"))
    if not isinstance(summary, dict):
        raise LogCorruptError(f"summary of {txid} is not a map; run `dtc verify`")
    return summary


def _summary_or_damage(txid: str, raw: bytes) -> Summary:
    try:
        return decode_summary(txid, raw)
    except LogCorruptError as exc:
        return {"s": DAMAGED, "damage": str(exc)}


def summaries(store: LogStore, *, unfinished_only: bool = False) -> Iterator[tuple[str, Summary]]:
    """``(txid, summary)`` of every transaction in the index (or every unfinished one); an
    entry that cannot be read back is ``{"s": "damaged", "damage": why}``."""
    if unfinished_only:
        with store.reader() as txn:
            for txid in store.unfinished_txids():
                raw = txn.get(txid.encode(), db=store.txns)
                if raw is not None:
                    yield txid, _summary_or_damage(txid, bytes(raw))
        return
    for txid, raw in store.iter_summaries():
        yield txid, _summary_or_damage(txid, raw)


def unfinished_views(store: LogStore) -> tuple[list[TransactionView], list[Damage]]:
    """Every unfinished transaction replayed from its records, oldest first, and those
    whose records or index entry cannot be read back (in doubt, see docs/recovery.md)."""
    return load_unfinished(store)


def unknown_transaction(txid: str, log: Path) -> CliError:
    return CliError(
        f"unknown transaction {txid!r} in {log}: `dtc list {log}` shows the transactions "
        "it holds (finished ones may have been removed by `dtc compact`)"
    )


def find_txid(store: LogStore, txid: str) -> str:
    """``txid`` itself when the log knows it, else the one transaction it is a prefix of."""
    if store.summary(txid) is not None:
        return txid
    matches: list[str] = []
    if txid:
        with store.reader() as txn, txn.cursor(db=store.txns) as cur:
            if cur.set_range(txid.encode()):
                for key in cur.iternext(keys=True, values=False):
                    name = bytes(key).decode("utf-8", "replace")
                    if not name.startswith(txid) or len(matches) > 5:
                        break
                    matches.append(name)
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise CliError(f"{txid!r} is the start of several transactions ({shown}); give more of it")
    raise unknown_transaction(txid, store.path)
