"""Opening a log for the CLI and finding things in it (read-only, safe beside a live
coordinator: LMDB readers never block the writer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import LogCorruptError, LogError
from ..history import TransactionView
from ..records import unframe, unpack
from ..wal.store import LogStore
from ..wal.unfinished import Damage, load_unfinished
from .errors import CliError

__all__ = [
    "find_txid",
    "open_readonly",
    "require_log",
    "summaries",
    "unfinished_views",
    "unknown_transaction",
]

Summary = dict[str, Any]
DAMAGED = "damaged"


def require_log(log: Path) -> None:
    """Refuse a directory that holds no log (commands that write would create one)."""
    if not (log / "data.mdb").exists():
        raise LogError(f"no log at {log}: give the directory a coordinator was opened on")


def open_readonly(log: Path) -> LogStore:
    """The log, read-only (a context manager); LMDB errors become LogError."""
    return LogStore(log, readonly=True)


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
