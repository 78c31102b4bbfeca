"""The coordinator on the new core: a thin facade over the :class:`~dtc_wal.drivers.Engine`,
a format-2 :class:`~dtc_wal.log.lmdb.LmdbLog` and a registry.

``TransactionCoordinator(path)`` gives one of these when the log at ``path`` is in format 2,
or when a new log is made with ``log_format=2`` (docs/architecture.md). It keeps the public
API, options, return contract and errors of the format-1 coordinator it subclasses; what it
shows of a transaction is a :class:`~.views.TransactionView` of the protocol's state.
"""

from __future__ import annotations

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
    InvalidOptionError,
    InvalidParticipantError,
    NotRecoverableError,
    NotRecoverableWarning,
    TransactionDamagedError,
    TransactionFinishedError,
    TransactionStateError,
    UnknownTransactionError,
)
from ..log.lmdb import LmdbLog
from ..participant import NOT_RECOVERABLE, CallableStep
from ..protocol import Mode, Outcome
from ..protocol import Options as ProtocolOptions
from ..recovery.report import InDoubt, RecoveryReport
from ..registry import ParticipantRegistry
from ..states import Mode as LegacyMode
from .core import TransactionCoordinator, _check_objects, _options
from .joining import _not_recoverable
from .options import CoordinatorOptions, OptionsKwargs
from .recovery_loop import Progress, RecoveryLoop
from .stats import CoordinatorStats, Counters
from .views import TransactionView, view_of

__all__ = ["EngineCoordinator"]

log = logging.getLogger("dtc_wal.coordinator")


class EngineCoordinator(TransactionCoordinator):
    """``TransactionCoordinator`` on a format-2 log (see the module docstring)."""

    def __init__(
        self,
        log_path: str | os.PathLike[str],
        *,
        options: CoordinatorOptions | None = None,
        registry: ParticipantRegistry | None = None,
        clock: Clock | None = None,
        **overrides: Unpack[OptionsKwargs],
    ) -> None:
        opts = _options(options, overrides)
        _check_objects(registry, clock)
        if opts.log_writer != "caller":
            raise InvalidOptionError(
                "log_writer='thread' is a format-1 option; a format-2 log always commits "
                "in groups led by the appenders: leave log_writer at 'caller'"
            )
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

    def __enter__(self) -> EngineCoordinator:
        return self

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
        self._require_live(txid)
        if not isinstance(participant, str) and params is None and self.strict:
            member = name or getattr(participant, "name", None) or type(participant).__name__
            why = f"an object ({type(participant).__name__}) enlisted directly"
            message = _not_recoverable(LegacyMode.TWO_PHASE, str(member), why)
            raise NotRecoverableError(f"{message} (refused: strict=True)")
        joined = self.engine.enlist(txid, participant, name=name, params=params)
        self._log_joined(txid, joined, Mode.TWO_PHASE, participant)
        return joined

    enlist_participant.__doc__ = TransactionCoordinator.enlist_participant.__doc__

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
            message = _not_recoverable(LegacyMode.SAGA, service_name, logged[NOT_RECOVERABLE])
            if self.strict:
                raise NotRecoverableError(f"{message} (refused: strict=True)")
            warnings.warn(
                f"{message}; TransactionCoordinator(strict=True) refuses such steps",
                NotRecoverableWarning,
                stacklevel=2,
            )
        self.engine.enlist(txid, step, name=service_name, mode=Mode.SAGA)
        self._log_joined(txid, service_name, Mode.SAGA, logged_factory)

    register_participant.__doc__ = TransactionCoordinator.register_participant.__doc__

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

    commit_transaction.__doc__ = TransactionCoordinator.commit_transaction.__doc__

    def rollback_transaction(self, txid: str, reason: str = "rolled back by the caller") -> None:
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

    rollback_transaction.__doc__ = TransactionCoordinator.rollback_transaction.__doc__

    # -- reading ---------------------------------------------------------------------------

    def transaction(self, txid: str) -> TransactionView:  # type: ignore[override]
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

    def unfinished(self) -> list[TransactionView]:  # type: ignore[override]
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

    def resolve(  # type: ignore[override]
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
