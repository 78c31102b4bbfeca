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

The records themselves (LMDB, the directory lock, the check-and-set) are
:class:`~dtc_wal.participants.barrier_store.BarrierStore`; the participants that
:meth:`IdempotencyBarrier.guard` and :meth:`IdempotencyBarrier.guard_step` return are in
:mod:`dtc_wal.participants.barrier_wrappers`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator

from ..clock import Clock
from ..errors import VoteNo
from ..participant import as_participant, as_saga_step
from .barrier_store import MIB, BarrierState, BarrierStore
from .barrier_wrappers import BarrierParticipant, BarrierSagaStep
from .errors import BarrierConflictError

__all__ = ["BarrierParticipant", "BarrierSagaStep", "BarrierState", "IdempotencyBarrier"]

log = logging.getLogger("dtc_wal.participants")


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


class IdempotencyBarrier(BarrierStore):
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
        super().__init__(path, map_size=map_size, max_map_size=max_map_size, sync=sync, clock=clock)
        self._txid_locks = _KeyedLocks()

    # -- wrapping --------------------------------------------------------------------------

    def guard(self, participant: object) -> BarrierParticipant:
        """Wrap a two-phase-commit participant (``prepare``/``commit``/``rollback``)."""
        return BarrierParticipant(as_participant(participant, "guarded participant"), self)

    def guard_step(self, step: object) -> BarrierSagaStep:
        """Wrap a saga step (``action``/``compensate``)."""
        return BarrierSagaStep(as_saga_step(step, "guarded saga step"), self)

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


def _claim(state: BarrierState | None) -> BarrierState | None:
    return BarrierState.PREPARING if state is None else None


def _null_rollback(state: BarrierState | None) -> BarrierState | None:
    return BarrierState.NULL_ROLLBACK if state is None else None
