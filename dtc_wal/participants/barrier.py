"""An idempotency barrier: makes any participant safe against duplicated and reordered calls.

A coordinator may deliver ``commit`` or ``rollback`` twice (a timeout, then a retry; a
restart of either side), may deliver ``rollback`` for a transaction whose ``prepare`` never
arrived (*null compensation*), and that late ``prepare`` may still arrive afterwards
(*hanging*). :class:`IdempotencyBarrier` keeps one durable record per transaction id in its
own small LMDB environment and answers each call from it:

=================  ==================  =====================================================
call               recorded state      what happens
=================  ==================  =====================================================
prepare / action   none                claim PREPARING, run it, record PREPARED
prepare / action   PREPARED/COMMITTED  nothing (it already ran): vote yes again
prepare / action   ROLLED_BACK/NULL    refuse with :class:`~dtc_wal.errors.VoteNo` (hanging)
commit             PREPARING/PREPARED  run it, record COMMITTED
commit             COMMITTED           nothing (duplicate)
rollback / comp.   none                record NULL_ROLLBACK, run nothing (null compensation)
rollback / comp.   PREPARING/PREPARED  run it, record ROLLED_BACK
rollback / comp.   ROLLED_BACK/NULL    nothing (duplicate)
=================  ==================  =====================================================

Invariant: a transaction id whose rollback was recorded before any prepare never gets a
``prepare`` through, and a ``prepare`` that returned (a yes vote) is never followed by a
rollback that skips the wrapped participant. Two pieces make that hold when prepare and
rollback race: a per-txid lock held across the wrapped call (so the calls of one txid run
one at a time in this process) and an LMDB write transaction that reads and writes the state
in one step (the claim is an atomic check-and-set). An exclusive ``flock`` on
``<path>/barrier.lock`` keeps a second process out, since the per-txid lock is per process.

Every state change is synced to disk before the call returns, and PREPARING is on disk
*before* the wrapped ``prepare`` runs: if the process dies in between, a later rollback
still reaches the wrapped participant instead of being taken for a null compensation. The
one window left is a death after a wrapped commit/rollback returned but before its record
is synced: the retry then calls it once more, so the wrapped participant should still
tolerate a repeat (the protocol asks that anyway).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from ..clock import Clock, SystemClock
from ..errors import VoteNo
from ..participant import Participant, SagaStep, as_participant, as_saga_step
from .errors import BarrierConflictError, BarrierError, BarrierLockedError

__all__ = ["BarrierParticipant", "BarrierSagaStep", "BarrierState", "IdempotencyBarrier"]

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


class _KeyedLocks:
    """One lock per key, created on first use and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class IdempotencyBarrier:
    """Durable per-transaction records in an LMDB directory at ``path`` (created if missing).

    Open one barrier per participant service at start-up and wrap the participant with
    :meth:`guard` (two-phase commit) or :meth:`guard_step` (saga), also inside the registry
    factory that recovery calls::

        barrier = IdempotencyBarrier("/var/lib/shop/payment-barrier")
        registry.register("payment", lambda **params: barrier.guard(Payment(**params)))

    Records are keyed by transaction id only: never share one barrier between two
    participants that take part in the same transactions. One process holds a barrier at a
    time (:class:`~dtc_wal.participants.errors.BarrierLockedError` otherwise).

    >>> import tempfile
    >>> barrier = IdempotencyBarrier(tempfile.mkdtemp())
    >>> calls = []
    >>> class Payment:
    ...     def prepare(self, txid, data): calls.append("prepare")
    ...     def commit(self, txid): calls.append("commit")
    ...     def rollback(self, txid): calls.append("rollback")
    >>> payment = barrier.guard(Payment())
    >>> payment.rollback("t1")            # null compensation: recorded, nothing runs
    >>> payment.prepare("t1", {})  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    dtc_wal.errors.VoteNo: refused (hanging prepare)
    >>> payment.prepare("t2", {}); payment.commit("t2"); payment.commit("t2")
    >>> calls
    ['prepare', 'commit']
    >>> barrier.close()
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
        self._txid_locks = _KeyedLocks()
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

    def __enter__(self) -> IdempotencyBarrier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- wrapping --------------------------------------------------------------------------

    def guard(self, participant: object) -> BarrierParticipant:
        """Wrap a two-phase-commit participant (``prepare``/``commit``/``rollback``)."""
        return BarrierParticipant(as_participant(participant, "guarded participant"), self)

    def guard_step(self, step: object) -> BarrierSagaStep:
        """Wrap a saga step (``action``/``compensate``)."""
        return BarrierSagaStep(as_saga_step(step, "guarded saga step"), self)

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

    # -- the protocol ----------------------------------------------------------------------------

    def run_first(self, txid: str, call: Callable[[], object], phase: str) -> None:
        """Run ``call`` (a prepare or saga action) at most once per ``txid``."""
        with self._txid_locks.hold(txid):
            old = self._check_and_set(txid, _claim)
            if old is not None and old.rolled_back:
                log.warning(
                    "txid=%s %s refused: rollback arrived first (hanging)",
                    txid,
                    phase,
                    extra={"txid": txid},
                )
                raise VoteNo(
                    f"{phase} for {txid} refused: its rollback was already recorded by the "
                    "idempotency barrier (the prepare arrived late)"
                )
            if old in (BarrierState.PREPARED, BarrierState.COMMITTED):
                log.info("txid=%s duplicate %s ignored", txid, phase, extra={"txid": txid})
                return
            if old is BarrierState.PREPARING:
                log.info("txid=%s %s runs again", txid, phase, extra={"txid": txid})
            call()  # raising leaves PREPARING: a rollback will still reach the participant
            self._check_and_set(txid, lambda _s: BarrierState.PREPARED)
            log.debug("txid=%s %s recorded", txid, phase, extra={"txid": txid})

    def run_commit(self, txid: str, call: Callable[[], object]) -> None:
        """Run ``call`` (a commit) at most once per ``txid``."""
        with self._txid_locks.hold(txid):
            old = self.state(txid)
            if old is BarrierState.COMMITTED:
                log.info("txid=%s duplicate commit ignored", txid, extra={"txid": txid})
                return
            if old is not None and old.rolled_back:
                log.error(
                    "txid=%s commit after rollback (%s) refused",
                    txid,
                    old.value,
                    extra={"txid": txid},
                )
                raise BarrierConflictError(
                    f"commit for {txid} arrived after the barrier recorded {old.value}; the "
                    "coordinator and this participant disagree about the outcome -- check "
                    "the transaction with `dtc show` before doing anything by hand"
                )
            if old is None:
                log.warning(
                    "txid=%s commit without a recorded prepare; passing it on",
                    txid,
                    extra={"txid": txid},
                )
            call()
            self._check_and_set(txid, lambda _s: BarrierState.COMMITTED)
            log.debug("txid=%s commit recorded", txid, extra={"txid": txid})

    def run_rollback(self, txid: str, call: Callable[[], object], phase: str) -> None:
        """Run ``call`` (a rollback or compensation) at most once, and only after work
        started; record a null rollback otherwise."""
        with self._txid_locks.hold(txid):
            old = self._check_and_set(txid, _null_rollback)
            if old is None:
                log.info(
                    "txid=%s null %s recorded: nothing was prepared",
                    txid,
                    phase,
                    extra={"txid": txid},
                )
                return
            if old.rolled_back:
                log.info("txid=%s duplicate %s ignored", txid, phase, extra={"txid": txid})
                return
            if old is BarrierState.COMMITTED:
                log.error("txid=%s %s after commit refused", txid, phase, extra={"txid": txid})
                raise BarrierConflictError(
                    f"{phase} for {txid} arrived after the barrier recorded a commit; the "
                    "coordinator and this participant disagree about the outcome -- check "
                    "the transaction with `dtc show` before doing anything by hand"
                )
            call()
            self._check_and_set(txid, lambda _s: BarrierState.ROLLED_BACK)
            log.debug("txid=%s %s recorded", txid, phase, extra={"txid": txid})

    # -- LMDB --------------------------------------------------------------------------------

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


def _key(txid: str) -> bytes:
    if not isinstance(txid, str) or not txid:
        raise TypeError("a transaction id is a non-empty string")
    return txid.encode("utf-8")


def _claim(state: BarrierState | None) -> BarrierState | None:
    return BarrierState.PREPARING if state is None else None


def _null_rollback(state: BarrierState | None) -> BarrierState | None:
    return BarrierState.NULL_ROLLBACK if state is None else None


class BarrierParticipant:
    """A two-phase-commit participant behind an :class:`IdempotencyBarrier`.

    Enlisted under the wrapped participant's ``name`` (or its class name).
    """

    def __init__(self, participant: Participant, barrier: IdempotencyBarrier) -> None:
        self.participant = participant
        self.barrier = barrier
        self.name: str = getattr(participant, "name", None) or type(participant).__name__

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.barrier.run_first(
            transaction_id, lambda: self.participant.prepare(transaction_id, data), "prepare"
        )

    def commit(self, transaction_id: str) -> None:
        self.barrier.run_commit(transaction_id, lambda: self.participant.commit(transaction_id))

    def rollback(self, transaction_id: str) -> None:
        self.barrier.run_rollback(
            transaction_id, lambda: self.participant.rollback(transaction_id), "rollback"
        )

    def __repr__(self) -> str:
        return f"BarrierParticipant({self.participant!r}, {str(self.barrier.path)!r})"


class BarrierSagaStep:
    """A saga step behind an :class:`IdempotencyBarrier`: the action runs at most once, a
    compensation before the action is recorded and makes the late action vote no."""

    def __init__(self, step: SagaStep, barrier: IdempotencyBarrier) -> None:
        self.step = step
        self.barrier = barrier
        self.name: str = getattr(step, "name", None) or type(step).__name__

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.barrier.run_first(
            transaction_id, lambda: self.step.action(transaction_id, data), "action"
        )

    def compensate(self, transaction_id: str) -> None:
        self.barrier.run_rollback(
            transaction_id, lambda: self.step.compensate(transaction_id), "compensation"
        )

    def __repr__(self) -> str:
        return f"BarrierSagaStep({self.step!r}, {str(self.barrier.path)!r})"
