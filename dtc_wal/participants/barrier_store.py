"""The idempotency barrier's durable records: one LMDB environment per barrier directory.

:class:`BarrierStore` owns the directory (an exclusive ``flock`` on ``<path>/barrier.lock``
keeps a second process out), keeps one record per transaction id -- msgpack
``[RECORD_FORMAT, state, unix time]`` under the UTF-8 txid -- and changes a record only by
an atomic check-and-set in one synced LMDB write transaction. What the states mean for the
calls of a participant is decided by :class:`~dtc_wal.participants.barrier.IdempotencyBarrier`.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

import lmdb
import msgpack

from ..clock import Clock, SystemClock
from ..errors import UnknownTransactionError
from .errors import BarrierError, BarrierLockedError

__all__ = ["LOCK_FILE", "MIB", "RECORD_FORMAT", "BarrierState", "BarrierStore"]

log = logging.getLogger("dtc_wal.participants")

MIB = 1024 * 1024
LOCK_FILE = "barrier.lock"
#: Version of the value encoding: msgpack ``[RECORD_FORMAT, state, unix time]``.
RECORD_FORMAT = 1


class BarrierState(enum.Enum):
    """What the barrier recorded for one transaction id."""

    PREPARING = "preparing"  # prepare (saga: action) started; it may or may not have run
    PREPARED = "prepared"  # prepare voted yes (saga: the action is done)
    COMMITTED = "committed"  # commit ran (two-phase commit only)
    ROLLED_BACK = "rolled-back"  # rollback (saga: compensation) ran on started work
    NULL_ROLLBACK = "null-rollback"  # rollback came first: nothing ran, prepare is refused

    @property
    def finished(self) -> bool:
        return self in _FINISHED

    @property
    def rolled_back(self) -> bool:
        return self in (BarrierState.ROLLED_BACK, BarrierState.NULL_ROLLBACK)


_FINISHED = frozenset(
    {BarrierState.COMMITTED, BarrierState.ROLLED_BACK, BarrierState.NULL_ROLLBACK}
)


def _encode(state: BarrierState, at: float) -> bytes:
    packed: bytes = msgpack.packb([RECORD_FORMAT, state.value, at])
    return packed


def _decode(raw: bytes | None, txid: str) -> tuple[BarrierState, float] | None:
    if raw is None:
        return None
    try:
        version, value, at = msgpack.unpackb(bytes(raw))
        if version != RECORD_FORMAT:
            raise ValueError(f"record format {version}, this build reads {RECORD_FORMAT}")
        return BarrierState(value), float(at)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise BarrierError(
            f"barrier record for {txid} cannot be read ({exc}); the barrier file is damaged "
            "or from another version -- keep it for inspection and open a new barrier"
        ) from exc


def _key(txid: str) -> bytes:
    if not isinstance(txid, str) or not txid:
        raise UnknownTransactionError(repr(txid))  # as the coordinator says of a non-str id
    return txid.encode("utf-8")


class BarrierStore:
    """Durable per-transaction records in an LMDB directory at ``path`` (created if missing).

    Every state change is synced to disk before the call returns (unless ``sync=False``).
    The map starts at ``map_size`` and doubles when full, up to ``max_map_size``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int = 16 * MIB,
        max_map_size: int = 1024 * MIB,
        sync: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_map_size = max(map_size, max_map_size)
        self._clock: Clock = clock or SystemClock()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._acquire_directory_lock()
        try:
            self._env = lmdb.open(
                str(self.path),
                map_size=map_size,
                subdir=True,
                sync=sync,
                metasync=sync,
                readahead=False,
                max_dbs=0,
            )
        except lmdb.Error as exc:
            os.close(self._lock_fd)
            raise BarrierError(f"cannot open barrier at {self.path}: {exc}") from exc
        # Every LMDB transaction of this barrier runs under _env_lock: write transactions
        # are serialised by LMDB anyway, and a map resize needs no transaction open.
        self._env_lock = threading.Lock()
        self._closed = False
        log.debug("barrier opened at %s", self.path)

    def _acquire_directory_lock(self) -> int:
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise BarrierLockedError(
                    f"barrier {self.path} is held by another process ({holder}); one process "
                    "owns a barrier at a time: stop that process or give this one its own path"
                ) from exc
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        return fd

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the LMDB environment and release the directory lock. Idempotent."""
        with self._env_lock:
            if self._closed:
                return
            self._closed = True
            self._env.close()
            os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading and housekeeping --------------------------------------------------------------

    def state(self, txid: str) -> BarrierState | None:
        """The recorded state of ``txid``, or None when nothing is recorded."""
        with self._env_lock:
            self._check_open()
            with self._env.begin() as txn:
                found = _decode(txn.get(_key(txid)), txid)
        return found[0] if found else None

    def purge(self, older_than: float) -> int:
        """Delete finished records written more than ``older_than`` seconds ago; return
        how many. Keep records longer than any duplicate or late call can arrive: a purged
        NULL_ROLLBACK no longer refuses a hanging prepare."""
        cutoff = self._clock.now() - older_than
        removed = 0
        with self._env_lock:
            self._check_open()
            with self._env.begin(write=True) as txn:
                for key, raw in txn.cursor():
                    found = _decode(raw, bytes(key).decode("utf-8", "replace"))
                    if found and found[0].finished and found[1] < cutoff:
                        txn.delete(key)
                        removed += 1
        log.info("barrier %s: purged %d finished records", self.path, removed)
        return removed

    # -- changing a record ---------------------------------------------------------------------

    def _check_and_set(
        self, txid: str, decide: Callable[[BarrierState | None], BarrierState | None]
    ) -> BarrierState | None:
        """In one LMDB write transaction: read the state, write ``decide(state)`` unless it
        is None or unchanged, commit (synced). Return the state read."""
        key = _key(txid)
        with self._env_lock:
            self._check_open()
            while True:
                try:
                    with self._env.begin(write=True) as txn:
                        found = _decode(txn.get(key), txid)
                        old = found[0] if found else None
                        new = decide(old)
                        if new is not None and new is not old:
                            txn.put(key, _encode(new, self._clock.now()))
                        return old
                except lmdb.MapFullError:
                    self._grow()

    def _grow(self) -> None:
        size: int = self._env.info()["map_size"]
        if size >= self.max_map_size:
            raise BarrierError(
                f"barrier {self.path} is full at {size} bytes; purge() old records or open "
                "it with a larger max_map_size"
            )
        self._env.set_mapsize(min(size * 2, self.max_map_size))

    def _check_open(self) -> None:
        if self._closed:
            raise BarrierError(f"barrier {self.path} is closed; open it again to continue")
