"""The log directory itself: creating it, and the lock that lets one process write it.

Every failure here says what is wrong with the path (a file where a directory should be,
a parent that is a file, a directory this process may not write, the log already open in
this very process) and what to do, rather than an errno.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import time
from pathlib import Path

from ...errors import InvalidOptionError, LogError, LogLockedError

__all__ = ["LOCK_FILE", "DirectoryLock", "make_log_directory", "open_log_directory"]

LOCK_FILE = "coordinator.lock"
_LOG_FILES = ("data.mdb", "lock.mdb", LOCK_FILE)
_HOLDER = re.compile(r"pid (\d+) on (\S+)")


class DirectoryLock:
    """An exclusive ``flock`` on ``<log>/coordinator.lock``; the kernel drops it on death.

    The file holds the owner's pid, host and start time so the error can name the holder.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError as exc:
            raise LogError(
                f"the log directory {self.path.parent} is not writable by this process "
                f"(uid {os.geteuid()}), and a coordinator writes there (its lock file and the "
                "log); give it write access, or work on a copy in a directory it can write"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise LogLockedError(_held_message(self.path.parent, holder)) from exc
            raise
        os.ftruncate(fd, 0)
        owner = f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n"
        os.pwrite(fd, owner.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @staticmethod
    def holder(directory: Path) -> str | None:
        """Who holds the lock on ``directory`` now, or None when nobody does."""
        path = directory / LOCK_FILE
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _held_message(directory: Path, holder: str) -> str:
    found = _HOLDER.match(holder)
    if found and int(found[1]) == os.getpid() and found[2] == socket.gethostname():
        return (
            f"log {directory} is held by this process ({holder}): it is already open here, "
            "by another TransactionCoordinator or LmdbLog (or a compaction or repair "
            "running now); close that one first (close(), or leave its with-block) or reuse "
            "it -- a process opens a log once"
        )
    return (
        f"log {directory} is held by another live coordinator ({holder}); stop it first, "
        "or open a different log directory"
    )


def make_log_directory(path: str | os.PathLike[str]) -> Path:
    """Create the log directory ``path`` and its missing parents (if needed); return it.

    Raises :class:`LogError` saying what is in the way: a file at ``path`` or at one of its
    parents, or a parent this process may not write.
    """
    if isinstance(path, bool) or not isinstance(path, str | os.PathLike):
        raise InvalidOptionError(
            f"a log path is a str or os.PathLike naming a directory, not {type(path).__name__}"
        )
    if os.fspath(path) == "":
        raise InvalidOptionError("the log path is empty: give a directory, e.g. var/dtc-log")
    directory = Path(path)
    if directory.is_dir():
        return directory
    if directory.exists():
        hint = (
            f" (it is one of a log's files: give its directory, {directory.parent})"
            if directory.name in _LOG_FILES
            else ""
        )
        raise LogError(
            f"{directory} is a file, not a log directory{hint}; give the path of a directory "
            "(created when missing)"
        )
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        if not directory.is_dir():  # a dangling symlink, or a file that appeared meanwhile
            raise LogError(
                f"{directory} exists but is not a directory (a broken symlink?); remove it or "
                "give another path for the log"
            ) from None
    except NotADirectoryError as exc:
        blocker = _nearest_existing(directory)
        raise LogError(
            f"cannot create the log directory {directory}: {blocker} is a file, not a "
            "directory; give a path whose parents are directories"
        ) from exc
    except PermissionError as exc:
        raise LogError(
            f"cannot create the log directory {directory}: this process (uid {os.geteuid()}) "
            f"may not write in {_nearest_existing(directory)}; create the directory with "
            "write access for it, or give another path"
        ) from exc
    except OSError as exc:
        raise LogError(
            f"cannot create the log directory {directory} ({exc}); give a directory path this "
            "process can write"
        ) from exc
    return directory


def open_log_directory(path: str | os.PathLike[str]) -> DirectoryLock:
    """Create the log directory if needed and take its lock (released by the caller)."""
    directory = make_log_directory(path)
    lock = DirectoryLock(directory)
    try:
        lock.acquire()
    except OSError as exc:
        raise LogError(
            f"cannot open the log directory {directory} ({exc}); give a directory path this "
            "process can write"
        ) from exc
    return lock


def _nearest_existing(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(".")
