"""The threaded driver: runs a machine's commands until it finishes (or, for ``wait=False``,
until its commit decision is durable).

* ``Append`` -> the log's ``append`` in the caller's thread, in order: a durable one
  blocks for its sync (group commit shares it with other callers) and is reported with
  ``Durable``; a refused one is reported with ``AppendFailed``.
* ``Call`` -> the participant call with the :class:`~dtc_wal.drivers.calls.CallPolicy`
  retries, in the caller's thread when the inline tracker knows that kind of call to be
  fast (or it is the last of the calls going to the pool and has no deadline: the caller's
  share), else on the pool; a call not answered by its deadline is reported ``TIMED_OUT``
  and told to stop retrying.
* ``Decision`` / ``Finish`` -> kept on the :class:`~.run.Run`.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable

from .. import _crash_hooks as points
from ..clock import Clock
from ..errors import ParticipantTimeoutError, ParticipantUnavailableError
from ..log import TransactionLog
from ..log_values import loggable_text
from ..protocol import (
    Acknowledged,
    Append,
    AppendFailed,
    Call,
    CallFailed,
    Command,
    Decision,
    Durable,
    Event,
    FailureKind,
    Op,
    Outcome,
    Retry,
    Vote,
    Voted,
)
from . import crash_points
from .calls import CallPolicy, CallResult
from .inline import InlineTracker
from .members import bind, call_once
from .run import Run, to_event

__all__ = ["ThreadedDriver"]

log = logging.getLogger("dtc_wal.drivers")

_NEVER = threading.Event()  # the cancel flag of inline calls: they run to the end
_Result = tuple[int, CallResult]  # (call token, result)


# Decisions are the coordinator's events, under its logger (as the call policy's are).
events = logging.getLogger("dtc_wal.coordinator")


def _log_decision(run: Run, outcome: Outcome) -> None:
    txid = run.txid
    if outcome is Outcome.COMMIT:
        events.info("txid=%s decided commit", txid, extra={"txid": txid})
        return
    tx = run.machine.transaction
    reason = (tx.reason if tx is not None else None) or "presumed abort"
    events.info("txid=%s decided abort: %s", txid, reason, extra={"txid": txid})


class _InFlight:
    """A pooled call. ``expires`` is its deadline on the real monotonic clock: a deadline
    is waited for in real time even when the driver's clock is a manual one (timestamps
    stay the clock's)."""

    __slots__ = ("expires", "flag", "member", "op")

    def __init__(self, member: int, op: Op, expires: float | None, flag: threading.Event):
        self.member = member
        self.op = op
        self.expires = expires
        self.flag = flag


class ThreadedDriver:
    """Runs machines with threads: one caller thread per run plus a shared pool."""

    def __init__(
        self,
        log: TransactionLog,
        policy: CallPolicy,
        pool: cf.Executor,
        clock: Clock,
        inline: InlineTracker | None = None,
    ) -> None:
        self.log = log
        self.policy = policy
        self.pool = pool
        self.clock = clock
        self.inline = inline

    def drive(
        self,
        run: Run,
        commands: Iterable[Command],
        events: Iterable[Event] = (),
        *,
        until_commit: bool = False,
    ) -> list[Command] | None:
        """Execute ``commands`` (then ``events``) and what they lead to until the run's
        Finish; return None. With ``until_commit``, stop at a commit decision and return
        the commands still to execute (for the completer)."""
        machine = run.machine
        todo: deque[Event] = deque(events)
        results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        inflight: dict[int, _InFlight] = {}
        token = 0
        batch = list(commands)
        while True:
            calls: list[Call] = []
            for i, command in enumerate(batch):
                kind = type(command)
                if kind is Call:
                    calls.append(command)  # type: ignore[arg-type]
                elif kind is Append:
                    failed = self._append(run, command)  # type: ignore[arg-type]
                    if failed is not None:
                        todo.append(failed)
                elif kind is Decision:
                    run.decided = outcome = command.outcome  # type: ignore[union-attr]
                    _log_decision(run, outcome)
                    if until_commit and outcome is Outcome.COMMIT:
                        return calls + batch[i + 1 :]
                else:
                    run.finish = command  # type: ignore[assignment]
            if calls:
                token = self._dispatch(run, calls, todo, results, inflight, token)
            if run.finish is not None and not todo:
                return None
            while not todo:
                self._wait(run, results, inflight, todo)
            if points.ARMED:
                batch = crash_points.handle(run, todo.popleft())
            else:
                batch = machine.handle(todo.popleft())

    # -- appends -----------------------------------------------------------------------------

    def _append(self, run: Run, command: Append) -> Event | None:
        try:
            self.log.append(command.records, durable=command.durable)
        except Exception as exc:
            run.log_error = exc
            log.error("txid=%s append failed: %s", run.txid, exc, extra={"txid": run.txid})
            text = loggable_text(f"{type(exc).__name__}: {exc}")
            return AppendFailed(self.clock.now(), command.id, text)
        if points.ARMED:
            crash_points.after_append(command)
        if command.durable:
            return Durable(self.clock.now(), command.id)
        return None

    # -- calls -------------------------------------------------------------------------------

    def _dispatch(
        self,
        run: Run,
        calls: list[Call],
        todo: deque[Event],
        results: queue.SimpleQueue[_Result],
        inflight: dict[int, _InFlight],
        token: int,
    ) -> int:
        if points.ARMED:
            crash_points.before_calls(calls)
        tracker = self.inline
        here: list[tuple[Call, Hashable]] = []
        pooled: list[tuple[Call, Hashable]] = []
        for call in calls:
            member = run.members[call.member]
            if member.obj is None:
                todo.append(self._unavailable(run, call))
                continue
            key: Hashable = (call.op, member.kind, member.name)
            if tracker is not None and tracker.is_fast(key):
                here.append((call, key))
            else:
                pooled.append((call, key))
        # The caller's share: of the calls bound for the pool, the last runs in the
        # caller's own thread while the others run on the pool (a lone call: no hand-off
        # at all) -- only without a deadline, as a call running here cannot be abandoned.
        if pooled and pooled[-1][0].deadline is None:
            here.append(pooled.pop())
        for call, key in pooled:
            token += 1
            flag = threading.Event()
            expires = None
            if call.deadline is not None:
                expires = time.monotonic() + max(0.0, call.deadline - self.clock.now())
            inflight[token] = _InFlight(call.member, call.op, expires, flag)
            self.pool.submit(self._pooled, run, call, key, flag, token, results)
        for call, key in here:
            todo.append(self._inline(run, call, key))
        return token

    def _inline(self, run: Run, call: Call, key: Hashable) -> Event:
        """One call in the caller's thread; a success becomes its event directly (what
        :meth:`_attempt` does, without a CallResult on the happy path)."""
        member = run.members[call.member]
        op = call.op
        tracker = self.inline
        timed = tracker is not None and tracker.threshold is not None
        t0 = time.perf_counter() if timed else 0.0
        try:
            value = call_once(member, op, run.txid, run.data)
        except Exception as first:
            fn = bind(member, op, run.txid, run.data)
            result = self._retried(run, call, fn, first, _NEVER)
            if not result.ok:
                return self._event(call.member, op, result, run)
            value = result.value
        finally:
            if timed:
                tracker.record(key, time.perf_counter() - t0)  # type: ignore[union-attr]
        if op is Op.PREPARE:
            vote = Vote.READ_ONLY if value is Vote.READ_ONLY else Vote.YES
            return Voted(self.clock.now(), call.member, vote)
        return Acknowledged(self.clock.now(), call.member, op)

    def _attempt(self, run: Run, call: Call, key: Hashable, flag: threading.Event) -> CallResult:
        """Call the member once, timed for the inline tracker. The happy path is one
        direct call; the first failure hands over to the policy for the remaining
        attempts (the failed one counts as attempt 1 and is not repeated)."""
        member = run.members[call.member]
        tracker = self.inline
        timed = tracker is not None and tracker.threshold is not None
        t0 = time.perf_counter() if timed else 0.0
        try:
            value = call_once(member, call.op, run.txid, run.data)
            return CallResult(member.name, True, 1, value=value)
        except Exception as first:
            fn = bind(member, call.op, run.txid, run.data)
            return self._retried(run, call, fn, first, flag)
        finally:
            if timed:
                tracker.record(key, time.perf_counter() - t0)  # type: ignore[union-attr]

    def _retried(
        self,
        run: Run,
        call: Call,
        fn: Callable[[], object],
        first: Exception,
        flag: threading.Event,
    ) -> CallResult:
        """The policy's verdict on a call whose first attempt raised ``first`` (its
        retries call ``fn`` again)."""
        pending: list[Exception] = [first]

        def again() -> object:
            if pending:
                raise pending.pop()
            return fn()

        member = run.members[call.member]
        return self.policy.call(
            again,
            name=member.name,
            txid=run.txid,
            phase=call.op.value,
            clock=self.clock,
            retry_any=call.retry is Retry.ANY,
            cancelled=flag,
        )

    def _pooled(
        self,
        run: Run,
        call: Call,
        key: Hashable,
        flag: threading.Event,
        token: int,
        results: queue.SimpleQueue[_Result],
    ) -> None:
        try:
            result = self._attempt(run, call, key, flag)
        except BaseException as exc:  # never lose a report: the run waits for it
            result = CallResult(run.members[call.member].name, False, 1, exc)
        results.put((token, result))

    def _event(self, member: int, op: Op, result: CallResult, run: Run) -> Event:
        error = result.error
        if error is not None:
            run.errors[member] = error
        retryable = error is not None and self.policy._retryable(error, False)
        return to_event(self.clock.now(), member, op, result, retryable)

    def _unavailable(self, run: Run, call: Call) -> Event:
        member = run.members[call.member]
        why = member.unavailable or f"{member.name} cannot be called"
        run.errors[call.member] = ParticipantUnavailableError(why)
        return CallFailed(self.clock.now(), call.member, call.op, why, 0, FailureKind.UNAVAILABLE)

    def _wait(
        self,
        run: Run,
        results: queue.SimpleQueue[_Result],
        inflight: dict[int, _InFlight],
        todo: deque[Event],
    ) -> None:
        """Wait for the next answer, or for the nearest deadline to pass."""
        assert inflight, f"transaction {run.txid}: the machine waits for nothing"
        deadlines = [f.expires for f in inflight.values() if f.expires is not None]
        timeout = None
        if deadlines:
            timeout = max(0.0, min(deadlines) - time.monotonic())
        try:
            token, result = results.get(timeout=timeout)
        except queue.Empty:
            self._expire(run, inflight, todo)
            return
        call = inflight.pop(token, None)
        if call is not None:  # else it timed out already: reported once
            todo.append(self._event(call.member, call.op, result, run))

    def _expire(self, run: Run, inflight: dict[int, _InFlight], todo: deque[Event]) -> None:
        now, real = self.clock.now(), time.monotonic()
        for token, call in list(inflight.items()):
            if call.expires is None or call.expires > real:
                continue
            del inflight[token]
            call.flag.set()  # no further attempts
            name = run.members[call.member].name
            text = (
                f"{call.op.value} of {name} in transaction {run.txid} did not return by its "
                "deadline"
            )
            log.error("txid=%s %s", run.txid, text, extra={"txid": run.txid})
            run.errors[call.member] = ParticipantTimeoutError(text)
            todo.append(CallFailed(now, call.member, call.op, text, 1, FailureKind.TIMED_OUT))
