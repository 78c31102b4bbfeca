"""Opening a log for reading when this process may not write it.

An LMDB reader normally opens ``lock.mdb`` read-write (and creates it when missing): its
reader table is how a writer knows which pages are still being read. A log in a read-only
directory -- a copy, a backup, a mounted snapshot, another user's log -- can only be read
without that lock file, and then a writer running meanwhile could reuse the pages being
read: what is read may be a torn view (docs/recovery.md, "Stale LMDB readers").
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from ...errors import LogError

__all__ = ["check_readable", "reader_lock_available"]

log = logging.getLogger("dtc_wal.log")


def reader_lock_available(directory: Path) -> bool:
    """Whether an LMDB reader of ``directory`` can open its ``lock.mdb`` read-write."""
    try:
        fd = os.open(directory / "lock.mdb", os.O_RDWR)
    except FileNotFoundError:
        return os.access(directory, os.W_OK | os.X_OK)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return False
        raise
    os.close(fd)
    return True


def check_readable(directory: Path) -> bool:
    """Raise :class:`LogError` when ``directory`` holds no log this process can read;
    return True when it must be read without LMDB's lock file (a warning is logged)."""
    data = directory / "data.mdb"
    if not data.exists():
        raise LogError(f"no log at {directory}: give the directory a coordinator was opened on")
    if not os.access(data, os.R_OK):
        raise LogError(
            f"cannot read {data}: permission denied; run as a user who can read the log (the "
            "coordinator's), or read a copy of it"
        )
    if reader_lock_available(directory):
        return False
    log.warning(
        "log at %s is read-only for this process: reading it without LMDB's lock file; a "
        "live writer cannot be ruled out, and if there is one what is read may be a torn view",
        directory,
    )
    return True
