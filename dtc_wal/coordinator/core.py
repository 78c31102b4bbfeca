"""The public coordinator: begin, enlist or register, commit or roll back."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, Literal, NoReturn, Unpack, overload

from ..clock import Clock, SystemClock
from ..drivers.inline import InlineTracker
from ..errors import (
    CommitIncompleteError,
    InvalidOptionError,
    LogError,
    TransactionAborted,
    TransactionStateError,
    UnsupportedFormatError,
)
from ..log.lmdb.format import log_format
from ..log_values import check_text, encode_mapping
from ..recovery.report import RecoveryReport
from ..registry import ParticipantRegistry
from ..states import Mode, Outcome
from ..wal.writer import WriteAheadLog
from . import options as options_module
from .background import BackgroundRecovery
from .completer import CommitHandle, Completer
from .driver import Driver
from .joining import Joining
from .live import LiveTransaction, Phase
from .operations import Operations
from .options import CoordinatorOptions, OptionsKwargs
from .stats import Counters

__all__ = ["TransactionCoordinator"]

log = logging.getLogger("dtc_wal.coordinator")


class TransactionCoordinator(Joining, Operations):
    """Drives participants through two-phase commit or an ordered saga, durably.

    Every state transition goes to the write-ahead log at ``log_path`` (an LMDB directory,
    created when missing) before the coordinator acts on it; see docs/protocol.md. One
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
    * ``log_writer`` ("caller") -- group commit led by appenders; "thread" uses a
      dedicated writer thread (slower; kept for comparison).
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

    def __new__(
        cls,
        log_path: str | os.PathLike[str],
        *,
        options: CoordinatorOptions | None = None,
        registry: ParticipantRegistry | None = None,
        clock: Clock | None = None,
        **overrides: Unpack[OptionsKwargs],
    ) -> TransactionCoordinator:
        """A format-2 log (or a new one with ``log_format=2``) gets the coordinator on the
        new core, :class:`~dtc_wal.coordinator.facade.EngineCoordinator`."""
        if cls is TransactionCoordinator and _format_of(log_path, options, overrides) == 2:
            from .facade import EngineCoordinator

            cls = EngineCoordinator
        return object.__new__(cls)

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
        self.options = opts
        self.max_data_bytes = opts.max_data_bytes
        self.registry = registry if registry is not None else ParticipantRegistry()
        self.clock: Clock = clock or SystemClock()
        self.policy = opts.policy()
        self.wal = WriteAheadLog(
            log_path,
            map_size=opts.map_size,
            max_map_size=opts.max_map_size,
            sync=opts.sync,
            writer=opts.log_writer,
        )
        self._pool = cf.ThreadPoolExecutor(max_workers=opts.max_workers, thread_name_prefix="dtc")
        self._driver = Driver(
            wal=self.wal,
            policy=self.policy,
            pool=self._pool,
            clock=self.clock,
            prepare_timeout=opts.prepare_timeout,
            phase2_timeout=opts.phase2_timeout,
            inline=InlineTracker(opts.inline_threshold),
        )
        self._live: dict[str, LiveTransaction] = {}
        self._counters = Counters()
        self._lock = threading.Lock()
        self._closed = False
        self.zombie_timeout = opts.zombie_timeout
        self.one_phase = opts.one_phase
        self.strict = opts.strict
        self._background = BackgroundRecovery(
            self, opts.recovery_interval, opts.recovery_backoff_max, opts.recovery_workers
        )
        self._completer = Completer(self._driver, self._hand_over_incomplete, self._forget)
        self.last_recovery_report = RecoveryReport()
        try:
            if opts.recover:
                self.last_recovery_report = self._background.recover_now()
            self.last_recovery_report.stale_readers_cleared = self.wal.store.stale_readers_cleared
            self._background.start()
        except BaseException:
            self.abandon()
            raise
        log.info("coordinator opened on %s", self.wal.path)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting work, write what is queued, release the log. Idempotent.

        Transactions still open are left as they are: never begun in the log ones vanish
        (nothing was sent to their participants), begun ones are finished by recovery.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._background.stop()
        self._completer.stop(drain=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.wal.close()
        log.info("coordinator closed")

    def abandon(self) -> None:
        """Drop everything without a final write: the in-process stand-in for kill -9."""
        with self._lock:
            self._closed = True
        self._background.stop()
        self._completer.stop(drain=False)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.wal.abandon()

    def __enter__(self) -> TransactionCoordinator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def flush(self) -> None:
        """Wait until every record appended so far, lazy ones included, is durable."""
        self.wal.flush()

    # -- finishing ---------------------------------------------------------------------------

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
        payload = encode_mapping(data, "data", self.max_data_bytes)  # logged as checked
        tx = self._start_finishing(txid)
        in_background = False
        try:
            if tx.mode is Mode.SAGA:
                self._commit_saga(tx, payload)
                finished = False
            else:
                finished = self._commit_two_phase(tx, payload)
            # The commit decision is durable here (or a one-phase commit is done).
            if wait:
                if not finished:
                    self._finish_commit(tx)
                return None
            if finished:
                return CommitHandle.completed(tx.txid)
            handle = self._completer.submit(tx)
            in_background = True
            return handle
        finally:
            if not in_background:
                self._forget(tx)

    def _commit_two_phase(self, tx: LiveTransaction, data: dict[str, Any]) -> bool:
        """Prepare and decide; True when nothing is left to deliver (one-phase commit)."""
        if self.one_phase and len(tx.members) == 1 and tx.members[0].abilities.one_phase:
            self._commit_one_phase(tx, data)
            return True
        try:
            votes = self._driver.prepare(tx, data) if tx.members else []
        except LogError as exc:
            self._abort(tx, f"the transaction could not be logged ({exc})", exc)
        refused = [r for r in votes if not r.ok]
        if refused:
            first = refused[0]
            reason = f"{first.name} voted no in prepare ({first.error_text})"
            self._abort(tx, reason, first.error)
        self._decide_commit(tx, data)
        return False

    def _commit_one_phase(self, tx: LiveTransaction, data: dict[str, Any]) -> None:
        """A lone participant with ``commit_one_phase`` decides by itself: no forced write."""
        result = self._driver.one_phase(tx, data)
        if not result.ok:
            reason = f"{result.name} refused the one-phase commit ({result.error_text})"
            self._abort(tx, reason, result.error)
        self._counters.add("committed")

    def _commit_saga(self, tx: LiveTransaction, data: dict[str, Any]) -> None:
        try:
            failed = self._driver.run_saga(tx, data)
        except LogError as exc:
            self._abort(tx, f"a saga step could not be logged ({exc})", exc)
        if failed is not None:
            reason = f"saga step {failed.name} failed ({failed.error_text})"
            self._abort(tx, reason, failed.error)
        self._decide_commit(tx, data)

    def _decide_commit(self, tx: LiveTransaction, data: dict[str, Any]) -> None:
        try:
            self._driver.decide_commit(tx, data or None)
        except LogError as exc:
            # Nothing of the decision is on disk (a failed write writes nothing), so the
            # outcome is abort by presumed abort: tell the participants now, not later.
            self._abort(tx, f"the commit decision could not be logged ({exc})", exc)
        self._counters.add("committed")

    def _finish_commit(self, tx: LiveTransaction) -> None:
        pending = self._driver.deliver(tx, Outcome.COMMIT)
        if pending:
            self._hand_over_incomplete(tx)
            raise CommitIncompleteError(
                tx.txid, [m.name for m in pending], [m.last_error or "" for m in pending]
            )

    def _hand_over_incomplete(self, tx: LiveTransaction) -> None:
        """A decided commit some participant has not acknowledged: recovery finishes it."""
        self._counters.add("incomplete")
        self._background.hand_over(tx)

    def _decide_abort(self, tx: LiveTransaction, reason: str) -> None:
        self._driver.decide_abort(tx, reason)
        self._counters.add("aborted")

    def _abort(self, tx: LiveTransaction, reason: str, cause: BaseException | None) -> NoReturn:
        self._decide_abort(tx, reason)
        pending = self._driver.deliver(tx, Outcome.ROLLBACK)
        if pending:
            self._background.hand_over(tx)
        raise TransactionAborted(tx.txid, reason, cause, [m.name for m in pending]) from cause

    def rollback_transaction(self, txid: str, reason: str = "rolled back by the caller") -> None:
        """Roll back an open transaction: every 2PC participant gets ``rollback``; saga
        steps never ran, so none is compensated. Returns when the decision is logged and
        delivered; participants whose rollback failed are left to recovery (logged)."""
        check_text(reason, "reason")  # it is logged
        tx = self._start_finishing(txid)
        try:
            self._decide_abort(tx, reason)
            pending = self._driver.deliver(tx, Outcome.ROLLBACK)
            if pending:
                self._background.hand_over(tx)
                log.error(
                    "txid=%s rollback not acknowledged by %s; recovery will retry",
                    txid,
                    ", ".join(m.name for m in pending),
                    extra={"txid": txid},
                )
        finally:
            self._forget(tx)

    def _start_finishing(self, txid: str) -> LiveTransaction:
        tx = self._get_live(txid)
        with tx.lock:
            if tx.phase is not Phase.OPEN:
                raise TransactionStateError(
                    f"transaction {txid} is already committing or rolling back; wait for "
                    "that call to return"
                )
            tx.phase = Phase.RUNNING
        return tx

    def _forget(self, tx: LiveTransaction) -> None:
        tx.phase = Phase.DONE
        with self._lock:
            self._live.pop(tx.txid, None)


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


def _format_of(
    log_path: object, given: CoordinatorOptions | None, overrides: Mapping[str, Any]
) -> int:
    """The format of the log at ``log_path``: the one on disk, or for a new log the
    ``log_format`` option. Asking for another format than the one on disk is refused: only
    ``dtc upgrade`` converts a log (format 1 to 2), keeping the original."""
    wanted = overrides.get("log_format", getattr(given, "log_format", None))
    found = None
    if isinstance(log_path, str | os.PathLike) and str(log_path):
        try:
            found = log_format(log_path)
        except LogError:  # e.g. open in this process already: the open says it clearly
            found = None
    if found is None:
        if wanted is None:
            return options_module.NEW_LOG_FORMAT
        return 2 if wanted == 2 else 1  # a bad value is refused by the options
    if wanted in (1, 2) and not isinstance(wanted, bool) and wanted != found:
        how = "`dtc upgrade LOG --to NEW` (or --in-place), which keeps the original"
        if found == 2:
            how = "none: there is no way back from format 2"
        raise UnsupportedFormatError(
            f"the log at {log_path} is in format {found} and log_format={wanted} was asked "
            f"for: a log never changes format by being opened (a way to convert it: {how}); "
            f"open it without log_format to keep running on format {found}"
        )
    return found


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
