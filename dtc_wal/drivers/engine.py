"""The internal engine: begin, enlist, commit and roll back on a
:class:`~.threaded.ThreadedDriver` over a :class:`~dtc_wal.log.TransactionLog` and a
:class:`~dtc_wal.registry.ParticipantRegistry`; recovery, the in-doubt listing, operator
resolution and inspection come from :class:`~.operations.EngineOperations`. The facade
(``TransactionCoordinator``) will delegate to it; it keeps the facade's return contract:
``commit`` returns None (or a ``CommitHandle`` with ``wait=False``), or raises
``TransactionAborted`` / ``CommitIncompleteError``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from .. import errors
from ..clock import Clock, SystemClock
from ..log import TransactionLog
from ..log_values import check_text, encode_mapping
from ..participant import CallableStep, as_participant, as_saga_step
from ..protocol import Call, Commit, Machine, MemberSpec, Mode, Outcome, ProtocolError, Rollback
from ..registry import ParticipantRegistry
from .completer import Completer
from .counters import Counters
from .handle import CommitHandle
from .inline import InlineTracker
from .members import LiveMember
from .operations import EngineOperations
from .options import EngineOptions
from .run import Run
from .threaded import ThreadedDriver
from .translate import protocol_errors, translated

__all__ = ["Engine", "protocol_errors"]

log = logging.getLogger("dtc_wal.drivers")


def new_txid() -> str:
    """A random UUID4 as a string, as ``str(uuid.uuid4())`` makes it, at half its cost."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Engine(EngineOperations):
    """Transactions on machines; thread-safe (any number of threads, one run each).

    ``counters`` counts ``committed`` (commit decisions taken for callers: logged, or a
    one-phase commit done), ``aborted`` (rollback decisions for callers), ``incomplete``
    (commits left with members pending), ``recovery_passes`` and ``recovered``
    (transactions those passes finished).
    """

    def __init__(
        self,
        log: TransactionLog,
        registry: ParticipantRegistry | None = None,
        options: EngineOptions | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.log = log
        self.registry = registry if registry is not None else ParticipantRegistry()
        self.options = options = options or EngineOptions()
        self.clock: Clock = clock or SystemClock()
        self._pool = cf.ThreadPoolExecutor(options.max_workers, thread_name_prefix="dtc-driver")
        self.driver = ThreadedDriver(
            log, options.policy, self._pool, self.clock, InlineTracker(options.inline_threshold)
        )
        self.completer = Completer(self.driver, self._completed)
        self.counters = Counters()
        self._live: dict[str, Run] = {}
        self._parked: dict[str, Run] = {}  # finished with members pending: for recover()
        self._lock = threading.Lock()
        self._pass_lock = threading.Lock()  # one recovery pass or resolution at a time
        self._damage_logged: set[str] = set()  # damaged txids logged at ERROR (once each)
        self._closed = False

    # -- transactions -----------------------------------------------------------------------

    def begin(self) -> str:
        """Start a transaction; return its id (a UUID4 string). Nothing is logged yet."""
        txid = new_txid()
        run = Run(Machine(txid, self.clock.now(), self.options.protocol))
        with self._lock:
            if self._closed:
                raise errors.CoordinatorClosedError("the engine is closed")
            self._live[txid] = run
        return txid

    def enlist(
        self,
        txid: str,
        participant: object,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        mode: Mode = Mode.TWO_PHASE,
    ) -> str:
        """Add a member; return its name. ``participant`` is an object (2PC:
        prepare/commit/rollback; ``mode=Mode.SAGA``: action/compensate, or a
        :class:`~dtc_wal.participant.CallableStep`), or the name of a registry factory
        built now with ``params`` and rebuilt from them by recovery."""
        run = self._run(txid)
        factory: str | None = None
        if isinstance(participant, str):
            encode_mapping(params, f"params of {participant!r}", self.options.max_data_bytes)
            factory = participant
            obj = self.registry.create(participant, params)
            member_name = name or participant
        elif params is not None:
            raise errors.InvalidParticipantError(
                "params are for participants built from a registry factory; pass the "
                "factory name as the participant to use them"
            )
        else:
            obj = participant
            member_name = name or getattr(participant, "name", None) or type(obj).__name__
            if isinstance(obj, CallableStep):
                factory, params = obj.log_entry()
        what = f"factory {factory!r}" if factory else "enlisted object"
        if mode is Mode.SAGA:
            as_saga_step(obj, what)
        else:
            as_participant(obj, what)
        if not isinstance(member_name, str) or not member_name:
            raise errors.InvalidParticipantError("a participant name is a non-empty string")
        check_text(member_name, "the participant name")
        live = LiveMember.of(member_name, obj, mode)
        can = live.can
        with run.lock:
            if run.started:
                raise errors.TransactionStateError(
                    f"transaction {txid} is already committing or rolling back; enlist every "
                    "participant before commit_transaction"
                )
            clash = False
            for m in run.members:
                if m.obj is obj:
                    raise errors.DuplicateParticipantError(
                        f"this participant object is already enlisted in {txid}"
                    )
                clash = clash or m.name == member_name
            if clash and name is None and mode is Mode.TWO_PHASE:
                names = {m.name for m in run.members}
                base, n = member_name, 2
                while member_name in names:
                    member_name, n = f"{base}#{n}", n + 1
                live.name = member_name
            try:
                run.machine.enlist(
                    MemberSpec(member_name, factory, dict(params) if params else None),
                    mode,
                    lists_prepared=can.lists_prepared,
                    commit_one_phase=can.one_phase,
                )
            except ProtocolError as exc:
                raise translated(exc) from exc
            run.members.append(live)
        return member_name

    def commit(
        self, txid: str, data: Mapping[str, Any] | None = None, *, wait: bool = True
    ) -> CommitHandle | None:
        """Commit. Returns None when every member acknowledged (``wait=False``: a handle as
        soon as the commit decision is durable). Raises ``TransactionAborted`` (``cause``:
        the failure that decided it) or ``CommitIncompleteError`` (decided, some members
        pending: :meth:`recover` finishes them); ``UnencodableDataError`` with nothing
        sent or logged and the transaction still open."""
        payload = encode_mapping(data, "data", self.options.max_data_bytes)
        run = self._start(txid)
        run.data = payload
        try:
            commands = run.machine.handle(Commit(self.clock.now(), payload or None))
        except ProtocolError as exc:
            raise translated(exc) from exc
        rest = self.driver.drive(run, commands, until_commit=not wait)
        if rest is not None and any(type(c) is Call for c in rest):
            self.counters.add("committed")  # durable: the completer finishes it
            return self.completer.submit(run, rest)
        if rest is not None:  # nothing left to call (a one-phase commit): end it here
            self.driver.drive(run, rest)
        try:
            run.result()
        finally:
            self._done(run)
        return None if wait else CommitHandle.completed(txid)

    def rollback(self, txid: str, reason: str = "rolled back by the caller") -> None:
        """Roll back an open transaction. Returns once the decision is logged and
        delivered; members whose rollback failed are kept for :meth:`recover`."""
        check_text(reason, "reason")
        run = self._start(txid)
        with protocol_errors():
            commands = run.machine.handle(Rollback(self.clock.now(), reason))
        self.driver.drive(run, commands)
        self._done(run)

    @property
    def parked(self) -> list[str]:
        """Txids finished with members pending (handed to :meth:`recover`)."""
        with self._lock:
            return list(self._parked)

    def close(self, drain: bool = True) -> None:
        """Stop taking work; finish (``drain``) or abandon the background commits. The log
        is the caller's to close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.completer.stop(drain)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _run(self, txid: str) -> Run:
        run = self._live.get(txid)
        if run is None:
            if not isinstance(txid, str):
                raise errors.InvalidTransactionIdError(
                    f"a transaction id is a str from begin(), not {type(txid).__name__}"
                )
            raise errors.UnknownTransactionError(txid)
        return run

    def _start(self, txid: str) -> Run:
        run = self._run(txid)
        with run.lock:
            if run.started:
                raise errors.TransactionStateError(
                    f"transaction {txid} is already committing or rolling back; wait for "
                    "that call to return"
                )
            run.started = True
        return run

    def _done(self, run: Run, decision_counted: bool = False) -> None:
        finish = run.finish
        with self._lock:
            self._live.pop(run.txid, None)
            if finish is not None and finish.pending:
                self._parked[run.txid] = run
        if finish is None:
            return
        if finish.outcome is Outcome.COMMIT:
            if not decision_counted:
                self.counters.add("committed")
            if finish.pending:
                self.counters.add("incomplete")
        else:
            self.counters.add("aborted")

    def _completed(self, run: Run) -> None:
        """A ``wait=False`` commit the completer finished (its decision counted)."""
        self._done(run, decision_counted=True)
