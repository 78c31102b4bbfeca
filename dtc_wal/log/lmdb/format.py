"""Which log format a directory holds, read from its ``meta`` table without a lock."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

from ...errors import LogError

__all__ = ["log_format"]


def log_format(path: str | os.PathLike[str]) -> int | None:
    """The log format of the directory ``path`` (1 or 2) from its ``meta`` table, or None
    when it holds no log (no data.mdb, or no readable ``meta/format``). Writes nothing."""
    directory = Path(path)
    if not (directory / "data.mdb").is_file():
        return None
    try:
        # meta/format is written once, when the log is made: no lock is needed to read it,
        # and lock=False leaves no lock.mdb behind in the directory.
        env = lmdb.open(str(directory), readonly=True, lock=False, max_dbs=8, subdir=True)
    except lmdb.Error as exc:
        raise LogError(f"cannot open the log at {directory}: {exc}") from exc
    try:
        with env.begin() as txn:
            if txn.get(b"meta") is None:
                return None
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(b"format", db=meta)
    except lmdb.Error as exc:
        raise LogError(f"cannot read the log at {directory}: {exc}") from exc
    finally:
        env.close()
    if raw is None or len(raw) != 8:
        return None
    return int.from_bytes(bytes(raw), "big")
