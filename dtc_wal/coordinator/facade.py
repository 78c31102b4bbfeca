"""The public coordinator: a thin facade over the :class:`~dtc_wal.drivers.Engine` (the
protocol machines on threads), a format-2 :class:`~dtc_wal.log.lmdb.LmdbLog` and a registry
(docs/architecture.md). It checks arguments, keeps the caller-facing bookkeeping (open
transactions for the zombie reaper, counters, the background recovery loop) and shows a
transaction as a :class:`~.views.TransactionView` of the protocol's state.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal, Unpack, overload

from ..clock import Clock, SystemClock
from ..drivers import Engine, EngineOptions
from ..drivers.handle import CommitHandle
from ..drivers.recovery import transaction_of
from ..errors import (
    CoordinatorClosedError,
    InvalidOptionError,
    InvalidParticipantError,
    NotRecoverableError,
    NotRecoverableWarning,
    TransactionDamagedError,
    TransactionFinishedError,
    TransactionStateError,
    UnknownTransactionError,
    UnsupportedFormatError,
)
from ..log.lmdb import LmdbLog
from ..participant import NOT_RECOVERABLE, CallableStep
from ..protocol import Mode, Outcome, TxState
from ..protocol import Options as ProtocolOptions
from ..recovery.report import InDoubt, RecoveryReport
from ..registry import ParticipantRegistry
from .options import LOG_FORMAT, CoordinatorOptions, OptionsKwargs
from .recovery_loop import Progress, RecoveryLoop
from .stats import CoordinatorStats, Counters
from .views import TransactionView, view_of

__all__ = ["TransactionCoordinator"]

log = logging.getLogger("dtc_wal.coordinator")


class TransactionCoordinator:
    """Drives participants through two-phase commit or an ordered saga, durably.

    Every state transition goes to the write-ahead log at ``log_path`` (an LMDB directory,
    created when missing, in log format 2) before the coordinator acts on it; see
    docs/protocol.md. A format-1 log (dtc-wal before the redesign) is refused with
    :class:`~dtc_wal.errors.UnsupportedFormatError`: ``dtc upgrade`` converts it. One
    live coordinator holds a log at a time. Thread-safe: any number of threads may run
    transactions at once.

    Options (all keyword-only; defaults in parentheses) -- or one frozen
    :class:`~dtc_wal.CoordinatorOptions` as ``options=``, which the keywords then override:

    * ``registry`` -- named participant factories, for recovery (an empty registry).
    * ``prepare_timeout`` (5 s) -- limit for a participant's prepare or saga action,
      retries included; ``phase2_timeout`` (30 s) -- the same for commit/rollback.
    * ``max_retries`` (3), ``backoff_initial`` (0.05 s), ``backoff_max`` (2 s), ``jitter``
      (0.05 s), ``transient_errors`` -- retry policy (docs/protocol.md).
    * ``max_workers`` (32) -- threads for participant calls that run in parallel.
    * ``map_size`` (64 MiB), ``max_map_size`` (8 GiB) -- the LMDB map and its growth limit.
    * ``sync`` (True) -- sync every log write; False is for benchmarks only.
    * ``clock`` -- a :class:`~dtc_wal.clock.Clock` (``ManualClock`` in tests).
    * ``recover`` (True) -- run recovery on open; ``recovery_interval`` (5 s, None: off) and
      ``recovery_backoff_max`` (300 s) -- the background retry loop; ``recovery_workers``
      (8) -- transactions one recovery pass drives at once (1: one after another).
    * ``zombie_timeout`` (300 s, None: off) -- roll back transactions left open that long.
    * ``inline_threshold`` (0.5 ms, None: off) -- call consistently fast participants in
      the caller's thread.
    * ``one_phase`` (True) -- one-phase commit for a lone participant that supports it.
    * ``max_data_bytes`` (1 MiB, None: no limit) -- the largest ``data`` of a commit, and
      ``params`` of a participant, encoded; larger ones raise ``DataTooLargeError``
      (docs/protocol.md, "What the log accepts").
    * ``strict`` (False) -- refuse, with :class:`~dtc_wal.errors.NotRecoverableError`,
      participants and saga steps that recovery could not rebuild after a crash (objects
      enlisted directly, saga callables that are not importable module-level functions);
      by default such saga callables get a :class:`~dtc_wal.errors.NotRecoverableWarning`
      and direct objects are accepted as documented.

    A saga step built by a registry factory, which recovery rebuilds after a crash
    (importable module-level functions are recoverable too; see ``register_participant``):

    >>> import tempfile
    >>> from dtc_wal import ParticipantRegistry, TransactionCoordinator
    >>> done = []
    >>> class Order:
    ...     def action(self, txid, data): done.append(f"order {data['sku']}")
    ...     def compensate(self, txid, data): done.append(f"undo order {data['sku']}")
    >>> registry = ParticipantRegistry()
    >>> registry.register("order", Order)
    >>> with TransactionCoordinator(tempfile.mkdtemp(), registry=registry) as coord:
    ...     txid = coord.begin_transaction()
    ...     coord.register_participant(txid, "order")
    ...     coord.commit_transaction(txid, data={"sku": "A1"})
    ...     coord.state(txid)
    <TxState.COMMITTED: 'committed'>
    >>> done
    ['order A1']
    """

    def __init__(
        self,
        log_path: str | os.PathLike[str],
        *,
        options: CoordinatorOptions | None = None,
        registry: ParticipantRegistry | None = None,
        clock: Clock | None = None,
        **overrides: Unpack[OptionsKwargs],
    ) -> None:
        # Every option is checked before anything opens: a bad value leaks nothing.
        opts = _options(options, overrides)
        _check_objects(registry, clock)
        if opts.log_writer != "caller":
            raise InvalidOptionError(
                "log_writer='thread' is a format-1 option; a format-2 log always commits "
                "in groups led by the appenders: leave log_writer at 'caller'"
            )
        _refuse_format1(opts.log_format)
        self.options = opts
        self.max_data_bytes = opts.max_data_bytes
        self.registry = registry if registry is not None else ParticipantRegistry()
        self.clock = clock or SystemClock()
        self.zombie_timeout = opts.zombie_timeout
        self.one_phase = opts.one_phase
        self.strict = opts.strict
        self.policy = opts.policy()
        self.log = LmdbLog(
            log_path, sync=opts.sync, map_size=opts.map_size, max_map_size=opts.max_map_size
        )
        engine_options = EngineOptions(
            protocol=ProtocolOptions(opts.prepare_timeout, opts.phase2_timeout, opts.one_phase),
            policy=self.policy,
            max_workers=opts.max_workers,
            inline_threshold=opts.inline_threshold,
            max_data_bytes=opts.max_data_bytes,
            recovery_workers=opts.recovery_workers,
        )
        self.engine = Engine(self.log, self.registry, engine_options, clock=self.clock)
        self._counters = Counters()
        self._open: dict[str, float] = {}  # txid -> monotonic time of begin, until finishing
        self._lock = threading.Lock()
        self._closed = False
        self._loop = RecoveryLoop(
            self._recover, self.reap_zombies, self.clock, opts.recovery_interval,
            opts.recovery_backoff_max,
        )  # fmt: skip
        self.last_recovery_report = RecoveryReport()
        try:
            if opts.recover:
                self.last_recovery_report = self._loop.recover_now()
            self.last_recovery_report.stale_readers_cleared = self.log.stale_readers_cleared
            self._loop.start()
        except BaseException:
            self.abandon()
            raise
        log.info("coordinator opened on %s (log format 2)", self.log.path)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting work, finish background commits, write what is queued, release
        the log. Idempotent. Open transactions vanish (nothing of them was logged or sent);
        committing ones are finished by recovery."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._loop.stop()
        self.engine.close(drain=True)
        self.log.close()
        log.info("coordinator closed")

    def abandon(self) -> None:
        """Drop everything without a final write: the in-process stand-in for kill -9."""
        with self._lock:
            self._closed = True
        self._loop.stop()
        self.engine.close(drain=False)
        self.log.abandon()

    def __enter__(self) -> TransactionCoordinator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def flush(self) -> None:
        """Wait until every record appended so far, lazy ones included, is durable."""
        self.log.flush()

    # -- transactions ----------------------------------------------------------------------

    def begin_transaction(self) -> str:
        """Start a transaction and return its id (a UUID4 string). Nothing is logged yet."""
        self._check_open()
        txid = self.engine.begin()
        with self._lock:
            self._open[txid] = self.clock.monotonic()
        self._counters.add("begun")
        log.info("txid=%s begun", txid, extra={"txid": txid})
        return txid

    def enlist_participant(
        self,
        txid: str,
        participant: object,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Add a two-phase-commit participant; return the name it is logged under.

        ``participant`` is an object with ``prepare``/``commit``/``rollback``, or the name of
        a registry factory -- then it is built with ``params`` now and rebuilt from
        ``(name, params)`` by recovery after a crash. Objects passed directly cannot be
        rebuilt after a crash: give them a factory for that. Under ``strict=True`` they are
        refused with :class:`~dtc_wal.errors.NotRecoverableError`; by default they are
        accepted without a warning: the object form is never recoverable, as documented.
        """
        self._require_live(txid)
        if not isinstance(participant, str) and params is None and self.strict:
            member = name or getattr(participant, "name", None) or type(participant).__name__
            why = f"an object ({type(participant).__name__}) enlisted directly"
            message = _not_recoverable(Mode.TWO_PHASE, str(member), why)
            raise NotRecoverableError(f"{message} (refused: strict=True)")
        joined = self.engine.enlist(txid, participant, name=name, params=params)
        self._log_joined(txid, joined, Mode.TWO_PHASE, participant)
        return joined

    def register_participant(
        self,
        txid: str,
        service_name: str,
        commit_function: Callable[[str, Mapping[str, Any]], object] | None = None,
        rollback_function: Callable[..., object] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        factory: str | None = None,
    ) -> None:
        """Add a saga step; steps run in registration order, compensations in reverse.

        With ``commit_function(txid, data)`` and ``rollback_function(txid)`` -- or
        ``rollback_function(txid, data)``, which gets the data the action got -- the step
        is those callables. When both are importable module-level functions their import
        paths are logged and recovery rebuilds the step by import after a crash; anything
        else (a lambda, a closure, a bound method, a callable object, a function of the
        script run as ``__main__``) cannot be rebuilt: a
        :class:`~dtc_wal.errors.NotRecoverableWarning` says so, or under ``strict=True`` a
        :class:`~dtc_wal.errors.NotRecoverableError` refuses the step.

        Without the functions the step is built by the registry factory ``factory``
        (default: ``service_name``) with ``params``, returning an object with ``action``
        and ``compensate`` (optionally ``compensate(txid, data)``), which recovery
        rebuilds -- so one factory can serve several steps under different service names.
        """
        self._require_live(txid)
        if not isinstance(service_name, str) or not service_name:
            raise InvalidParticipantError("a saga step's service_name is a non-empty string")
        if commit_function is None and rollback_function is None:
            self.engine.enlist(
                txid, factory or service_name, name=service_name, params=params, mode=Mode.SAGA
            )
            self._log_joined(txid, service_name, Mode.SAGA, factory or service_name)
            return
        if commit_function is None or rollback_function is None:
            raise InvalidParticipantError(
                "register_participant needs both commit_function and rollback_function, or "
                "neither (then service_name names a registry factory)"
            )
        if factory is not None:
            raise InvalidParticipantError(
                "factory is for steps built from the registry; omit the functions to use it"
            )
        if params is not None:
            raise InvalidParticipantError(
                "params are for steps built from a registry factory; omit the functions to use them"
            )
        step = CallableStep(commit_function, rollback_function)
        logged_factory, logged = step.log_entry()
        if logged_factory is None:
            message = _not_recoverable(Mode.SAGA, service_name, logged[NOT_RECOVERABLE])
            if self.strict:
                raise NotRecoverableError(f"{message} (refused: strict=True)")
            warnings.warn(
                f"{message}; TransactionCoordinator(strict=True) refuses such steps",
                NotRecoverableWarning,
                stacklevel=2,
            )
        self.engine.enlist(txid, step, name=service_name, mode=Mode.SAGA)
        self._log_joined(txid, service_name, Mode.SAGA, logged_factory)

    @overload
    def commit_transaction(
        self, txid: str, data: Mapping[str, Any] | None = None, *, wait: Literal[True] = True
    ) -> None: ...

    @overload
    def commit_transaction(
        self, txid: str, data: Mapping[str, Any] | None = None, *, wait: Literal[False]
    ) -> CommitHandle: ...

    def commit_transaction(
        self, txid: str, data: Mapping[str, Any] | None = None, *, wait: bool = True
    ) -> CommitHandle | None:
        """Commit: returns only when every participant acknowledged commit.

        Raises :class:`TransactionAborted` when the outcome is rollback (``cause`` says
        why), :class:`CommitIncompleteError` when commit is decided and durable but some
        participant has not acknowledged yet (recovery finishes it), and
        :class:`UnencodableDataError` (:class:`DataTooLargeError` past ``max_data_bytes``)
        -- with nothing sent or logged and the transaction still open -- when the log could
        not read ``data`` back equal (docs/protocol.md, "What the log accepts").

        With ``wait=False`` it returns a :class:`CommitHandle` as soon as the commit
        decision is durable; phase two runs in the background (batched for participants
        with ``commit_many``) and ``handle.wait()`` reports its end. Aborts still raise
        :class:`TransactionAborted` before returning.
        """
        self._require_live(txid)
        with self._lock:
            opened = self._open.pop(txid, None)
        try:
            return self.engine.commit(txid, data, wait=wait)
        except BaseException:
            if opened is not None and self.engine.is_live(txid):
                with self._lock:  # refused before it started (bad data): still open
                    self._open[txid] = opened
            raise

    def rollback_transaction(self, txid: str, reason: str = "rolled back by the caller") -> None:
        """Roll back an open transaction: every 2PC participant gets ``rollback``; saga
        steps never ran, so none is compensated. Returns when the decision is logged and
        delivered; participants whose rollback failed are left to recovery (logged)."""
        self._require_live(txid)
        with self._lock:
            opened = self._open.pop(txid, None)
        try:
            self.engine.rollback(txid, reason)
        except BaseException:
            if opened is not None and self.engine.is_live(txid):
                with self._lock:
                    self._open[txid] = opened
            raise

    # -- reading ---------------------------------------------------------------------------

    def state(self, txid: str) -> TxState:
        """Shortcut for ``transaction(txid).state``."""
        return self.transaction(txid).state

    def transaction(self, txid: str) -> TransactionView:
        """The transaction as its records say (a copy), live or from the log."""
        if not isinstance(txid, str):
            raise UnknownTransactionError(repr(txid))
        live = self.engine.transaction(txid)
        if live is not None:
            return view_of(live)
        tx = self.engine.read(txid)
        if tx is None:
            raise UnknownTransactionError(txid)
        return view_of(tx)

    def unfinished(self) -> list[TransactionView]:
        """Every transaction the log does not show ended, oldest first (damaged ones are
        left out: :meth:`in_doubt` reports them)."""
        self.log.flush()
        views = []
        for stored in self.log.unfinished():
            try:
                views.append(view_of(transaction_of(stored)))
            except TransactionDamagedError:
                continue
        views.sort(key=lambda v: v.created_at)
        return views

    def in_doubt(self) -> list[InDoubt]:
        """Participants of unfinished transactions no caller drives that still need their
        outcome, and one entry (``damaged`` True) per damaged transaction."""
        self.log.flush()
        return self.engine.in_doubt()

    def stats(self) -> CoordinatorStats:
        """Counters since open and gauges now (:class:`~.stats.CoordinatorStats`)."""
        # A transaction every member acknowledged is finished at once: its lazy Ended may
        # still be queued, and the log's unfinished table counts it until that is written.
        # Write what is queued first (nothing to do, and no wait, when the queue is empty).
        self.log.flush()
        info = self.log.info()
        counts = self._counters.snapshot()
        for name, value in self.engine.counters.snapshot().items():
            counts[name] = counts.get(name, 0) + value
        backing_off = len(self._loop.backing_off())
        return CoordinatorStats(
            **counts,
            live=len(self.engine.live_txids()),
            unfinished=info.unfinished,
            in_doubt=min(backing_off, info.unfinished),
            log_records=info.records,
            log_batches=info.syncs,
            log_syncs=info.syncs,
            log_bytes_used=info.map_used,
            log_map_size=info.map_size,
            log_max_map_size=info.max_map_size,
        )

    # -- recovery and operators ------------------------------------------------------------

    def recover_now(self, progress: Progress | None = None) -> RecoveryReport:
        """Run a recovery pass now over every unfinished transaction no caller owns;
        ``progress(done, total)`` is called after each transaction."""
        if progress is not None and not callable(progress):
            raise InvalidOptionError(f"progress must be a callable(done, total), not {progress!r}")
        return self._loop.recover_now(progress=progress)

    def _recover(self, skip: set[str], progress: Progress | None) -> RecoveryReport:
        return self.engine.recover(progress=progress, skip=skip)

    def reap_zombies(self) -> list[str]:
        """Roll back open transactions older than ``zombie_timeout``; return their ids."""
        limit = self.zombie_timeout
        if limit is None:
            return []
        now = self.clock.monotonic()
        with self._lock:
            old = [(t, now - since) for t, since in self._open.items() if now - since > limit]
        reaped = []
        for txid, age in old:
            reason = (
                f"zombie reaper: open for {age:.0f}s, more than zombie_timeout={limit}s, "
                "without commit or rollback"
            )
            try:
                self.rollback_transaction(txid, reason=reason)
            except (TransactionStateError, UnknownTransactionError):
                continue  # its caller got there first
            log.warning("txid=%s %s", txid, reason, extra={"txid": txid})
            self._counters.add("zombies_reaped")
            reaped.append(txid)
        return reaped

    def resolve(
        self,
        txid: str,
        outcome: Outcome | str,
        *,
        reason: str,
        participant: str | None = None,
        actor: str | None = None,
        heuristic: bool = False,
    ) -> TransactionView:
        """Record an operator's decision for an in-doubt transaction (or one participant
        of it): ``outcome`` is ``"commit"`` or ``"abort"``; against a durable decision
        only with ``heuristic=True`` (docs/recovery.md)."""
        resolution = _resolution(outcome)
        with self._loop.exclusive():  # not while a recovery pass acts on it
            tx = self.engine.resolve(
                txid, resolution, reason=reason, member=participant, actor=actor,
                heuristic=heuristic,
            )  # fmt: skip
        if tx.ended:
            self._loop.forget(txid)
        return view_of(tx)

    @property
    def live_txids(self) -> set[str]:
        return self.engine.live_txids()

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CoordinatorClosedError(
                "this coordinator is closed; open a new TransactionCoordinator on the log"
            )

    def _require_live(self, txid: str) -> None:
        """Return when ``txid`` is a caller's transaction live here; else raise what it is:
        unknown, finished, or owned by recovery."""
        if not isinstance(txid, str):
            raise UnknownTransactionError(repr(txid))
        self._check_open()
        if self.engine.is_live(txid):
            return
        tx = self.engine.read(txid)  # flushed first: a transaction that just finished
        if tx is None:
            raise UnknownTransactionError(txid)
        if tx.state.finished:
            raise TransactionFinishedError(txid, tx.state.value)
        raise TransactionStateError(
            f"transaction {txid} is {tx.state.value} and owned by recovery, not by a "
            "caller; see `dtc show` for its history"
        )

    def _log_joined(self, txid: str, name: str, mode: Mode, what: object) -> None:
        factory = f", factory {what}" if isinstance(what, str) else ""
        log.info(
            "txid=%s enlisted %s (%s%s)", txid, name, mode.value, factory, extra={"txid": txid}
        )


def _resolution(outcome: Outcome | str) -> Outcome:
    """``"commit"``, or ``"abort"``/``"rollback"`` (also as an ``Outcome``)."""
    value = str(getattr(outcome, "value", outcome)).lower()
    if value == "commit":
        return Outcome.COMMIT
    if value in ("abort", "rollback"):
        return Outcome.ABORT
    raise InvalidOptionError(f"an operator resolves to 'commit' or 'abort', not {outcome!r}")


def _not_recoverable(mode: Mode, name: str, why: str) -> str:
    """What NotRecoverableWarning and NotRecoverableError say (no txid: one warning per
    step and reason, not one per transaction)."""
    if mode is Mode.SAGA:
        return (
            f"saga step {name!r} cannot be rebuilt after a crash: {why}. Register "
            "module-level functions, a registry factory (register_participant(txid, name, "
            "factory=..., params=...)) or registry.register_functions(name, commit, "
            "rollback) to make it recoverable; otherwise, after a crash, compensate it by "
            "hand and record that with `dtc resolve`"
        )
    return (
        f"participant {name!r} cannot be rebuilt after a crash: it is {why}. Enlist it by "
        "the name of a registry factory (registry.register(name, factory); "
        "enlist_participant(txid, name, params=...)) to make it recoverable; otherwise, "
        "after a crash, settle it by hand and record that with `dtc resolve`"
    )


def _refuse_format1(wanted: int | None) -> None:
    """``log_format=1``: UnsupportedFormatError saying what to do. (A format-1 log on disk
    is refused by :class:`~dtc_wal.log.lmdb.LmdbLog`, naming ``dtc upgrade``.)"""
    if wanted == 1:
        raise UnsupportedFormatError(
            f"log_format=1 was asked for, but this version writes only log format "
            f"{LOG_FORMAT}; leave log_format out (format 1 logs are read only by "
            "`dtc upgrade`, which converts them)"
        )


def _check_objects(registry: object, clock: object) -> None:
    if registry is not None and not isinstance(registry, ParticipantRegistry):
        raise InvalidOptionError(
            f"registry must be a dtc_wal.ParticipantRegistry (or None), not "
            f"{type(registry).__name__}"
        )
    if clock is not None and not all(
        callable(getattr(clock, m, None)) for m in ("now", "monotonic", "sleep")
    ):
        raise InvalidOptionError(
            "clock must be a dtc_wal.Clock (now(), monotonic() and sleep()), e.g. "
            f"ManualClock(), not {type(clock).__name__}"
        )


_FIELDS = frozenset(f.name for f in dataclasses.fields(CoordinatorOptions))


def _options(given: CoordinatorOptions | None, overrides: Mapping[str, Any]) -> CoordinatorOptions:
    """``given`` (or the defaults) with the keyword overrides, checked."""
    if given is not None and not isinstance(given, CoordinatorOptions):
        raise InvalidOptionError(
            f"options must be a dtc_wal.CoordinatorOptions (or None), not {type(given).__name__}"
        )
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise InvalidOptionError(
            f"unknown option(s) {', '.join(unknown)}; the options are: {', '.join(sorted(_FIELDS))}"
        )
    base = given if given is not None else CoordinatorOptions()
    return dataclasses.replace(base, **overrides) if overrides else base
