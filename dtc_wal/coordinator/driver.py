"""The protocol drivers shared by the live coordinator and recovery.

Each function logs before it acts, following the durability table in docs/protocol.md:

* BEGUN + ENLISTED are durable before the first prepare or saga action;
* DECIDED_COMMIT is durable before the first commit;
* a saga step's PREPARED record is durable before the next step starts;
* DECIDED_ABORT, ACKNOWLEDGED, FAILED and COMPLETED are lazy (they ride the next sync):
  losing them only repeats an idempotent rollback or commit, and presumed abort covers a
  missing abort decision.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from ..clock import Clock
from ..errors import ParticipantUnavailableError
from ..fault_injection import points
from ..records import LogRecord
from ..states import READ_ONLY, Mode, Outcome, ParticipantState, RecordType
from ..wal.writer import WriteAheadLog
from .calls import CallPolicy, CallResult, run_parallel
from .inline import InlineTracker
from .live import LiveTransaction, Member

__all__ = ["Driver"]

log = logging.getLogger("dtc_wal.coordinator")


def _crash(name: str) -> None:
    if points.ARMED:
        points.hit(name)


@dataclasses.dataclass
class Driver:
    wal: WriteAheadLog
    policy: CallPolicy
    pool: cf.Executor
    clock: Clock
    prepare_timeout: float | None
    phase2_timeout: float | None
    inline: InlineTracker | None = None

    # -- helpers -----------------------------------------------------------------------

    def record(self, kind: RecordType, tx: LiveTransaction, **fields: Any) -> LogRecord:
        return LogRecord(kind, tx.txid, self.clock.now(), **fields)

    def log_opening(self, tx: LiveTransaction) -> None:
        """Make BEGUN + ENLISTED durable (once) before anything is sent."""
        if not tx.logged:
            self.wal.append(tx.opening_records(self.clock.now()))
            tx.logged = True
            # BEGUN and ENLISTED share one sync, so these two points are the same moment.
            _crash("begin.after-log")
            _crash("enlist.after-log")

    def _call(
        self,
        tx: LiveTransaction,
        member: Member,
        phase: str,
        fn: Callable[[], object],
        retry_any: bool,
    ) -> Callable[[threading.Event], CallResult]:
        def run(cancelled: threading.Event) -> CallResult:
            log.debug("txid=%s %s -> %s", tx.txid, phase, member.name, extra={"txid": tx.txid})
            return self.policy.call(
                fn,
                name=member.name,
                txid=tx.txid,
                phase=phase,
                clock=self.clock,
                retry_any=retry_any,
                cancelled=cancelled,
            )

        return run

    # -- two-phase commit ----------------------------------------------------------------

    def prepare(self, tx: LiveTransaction, data: Mapping[str, Any]) -> list[CallResult]:
        """Send prepare to every participant at once; return their votes in order."""
        if tx.members and all(getattr(m.obj, "lists_prepared", False) is True for m in tx.members):
            # Every participant can list what it holds prepared, and recovery rolls back
            # whatever the log has no commit decision for: the opening records need not be
            # on disk first. They are queued now and land with (or before) the decision.
            self.wal.append(tx.opening_records(self.clock.now()), wait=False)
            tx.logged = True
        self.log_opening(tx)
        _crash("prepare.before-send")
        calls = [
            (m.name, self._call(tx, m, "prepare", _bind_prepare(m.obj, tx.txid, data), False))
            for m in tx.members
        ]
        seen = 0

        def on_result(result: CallResult) -> None:
            nonlocal seen
            seen += 1
            log.debug(
                "txid=%s vote %s: %s",
                tx.txid,
                result.name,
                "yes" if result.ok else f"no ({result.error_text})",
                extra={"txid": tx.txid},
            )
            if seen == 1 and result.ok:
                _crash("prepare.after-first")

        results = run_parallel(
            self.pool,
            calls,
            self.prepare_timeout,
            tx.txid,
            "prepare",
            on_result,
            self.inline,
            _keys("prepare", tx.members),
        )
        for member, result in zip(tx.members, results, strict=True):
            if result.ok:
                read_only = result.value is READ_ONLY
                member.state = (
                    ParticipantState.READ_ONLY if read_only else ParticipantState.PREPARED
                )
            member.attempts += result.attempts
            if not result.ok:
                member.last_error = result.error_text
        if all(r.ok for r in results):
            _crash("prepare.after-all")
        return results

    def one_phase(self, tx: LiveTransaction, data: Mapping[str, Any]) -> CallResult:
        """One-phase commit of a lone participant (docs/protocol.md, "One-phase commit").

        Nothing is forced to disk: the participant's own commit is the decision. On success
        the whole history -- opening, vote, decision, acknowledgement, completion -- goes to
        the log in one lazy append, so it lands whole or not at all; a log without it
        simply does not know the transaction, and nothing needs recovering.
        """
        (member,) = tx.members
        call = self._call(
            tx, member, "one-phase commit", _bind_one_phase(member.obj, tx.txid, data), False
        )
        (result,) = run_parallel(
            self.pool,
            [(member.name, call)],
            self.prepare_timeout,
            tx.txid,
            "one-phase commit",
            None,
            self.inline,
            _keys("one-phase", [member]),
        )
        member.attempts += result.attempts
        if not result.ok:
            member.last_error = result.error_text
            return result
        member.state = ParticipantState.PREPARED
        records = tx.opening_records(self.clock.now()) + self._unlogged_prepared(tx)
        tx.logged = True
        records.append(self.record(RecordType.DECIDED_COMMIT, tx, data=dict(data) or None))
        records.append(self._ack(tx, member, Outcome.COMMIT))
        records.append(self.record(RecordType.COMPLETED, tx))
        self.wal.append(records, wait=False)
        log.info(
            "txid=%s committed in one phase by %s", tx.txid, member.name, extra={"txid": tx.txid}
        )
        return result

    def _unlogged_prepared(self, tx: LiveTransaction) -> list[LogRecord]:
        records = []
        for m in tx.members:
            if m.prepared_logged:
                continue
            if m.state is ParticipantState.PREPARED:
                records.append(self.record(RecordType.PREPARED, tx, participant=m.name))
                m.prepared_logged = True
            elif m.state is ParticipantState.READ_ONLY:
                records.append(
                    self.record(
                        RecordType.PREPARED, tx, participant=m.name, outcome=Outcome.READ_ONLY
                    )
                )
                m.prepared_logged = True
        return records

    def decide_commit(self, tx: LiveTransaction, data: Any) -> None:
        """Log the yes-votes and the commit decision in one batch; durable on return."""
        records = [] if tx.logged else tx.opening_records(self.clock.now())  # no participants
        tx.logged = True
        records += self._unlogged_prepared(tx)
        records.append(self.record(RecordType.DECIDED_COMMIT, tx, data=data))
        self.wal.append(records)
        log.info("txid=%s decided commit", tx.txid, extra={"txid": tx.txid})
        _crash("decision.after-commit-log")

    def decide_abort(self, tx: LiveTransaction, reason: str, actor: str | None = None) -> None:
        """Log yes-votes seen so far and the abort decision, lazily (presumed abort)."""
        records = [] if tx.logged else tx.opening_records(self.clock.now())
        tx.logged = True
        records += self._unlogged_prepared(tx)
        records.append(self.record(RecordType.DECIDED_ABORT, tx, reason=reason, actor=actor))
        self.wal.append(records, wait=False)
        log.info("txid=%s decided abort: %s", tx.txid, reason, extra={"txid": tx.txid})
        _crash("decision.after-abort-log")

    # -- sagas -----------------------------------------------------------------------------

    def run_saga(self, tx: LiveTransaction, data: Mapping[str, Any]) -> CallResult | None:
        """Run saga actions in registration order; return the failed call, or None."""
        self.log_opening(tx)
        last = len(tx.members) - 1
        for i, member in enumerate(tx.members):
            member.started = True
            action = self._call(
                tx, member, "saga action", _bind_action(member.obj, tx.txid, data), False
            )
            # A step gets the same time limit as a prepare (docs/protocol.md).
            (result,) = run_parallel(
                self.pool,
                [(member.name, action)],
                self.prepare_timeout,
                tx.txid,
                "saga action",
                None,
                self.inline,
                _keys("action", [member]),
            )
            member.attempts += result.attempts
            if not result.ok:
                member.last_error = result.error_text
                return result
            member.state = ParticipantState.PREPARED
            _crash("saga.after-step")
            if i < last:
                # Invariant: step i is on disk before step i+1 starts, so recovery knows
                # that at most the first step without a PREPARED record may have run.
                # The last step's record travels with the commit decision (one sync).
                self.wal.append(self._unlogged_prepared(tx))
                _crash("saga.after-step-log")
        return None

    # -- phase two -------------------------------------------------------------------------

    def deliver(
        self, tx: LiveTransaction, outcome: Outcome, earlier: Sequence[LogRecord] = ()
    ) -> list[Member]:
        """Send the decided outcome to every member that has not acknowledged it.

        Returns the members still pending (their errors logged and written as FAILED
        records); the transaction is COMPLETED in the log when none are. ``earlier`` are
        acknowledgements already collected (by :meth:`deliver_many`) to log with the rest.
        """
        records = list(earlier)
        if tx.mode is Mode.SAGA:
            records += self._deliver_saga(tx, outcome)
        else:
            records += self._deliver_two_phase(tx, outcome)
        pending = [m for m in tx.members if not m.state.done]
        if not pending:
            records.append(self.record(RecordType.COMPLETED, tx))
        if records:
            self.wal.append(records, wait=False)
        if not pending:
            log.info("txid=%s completed: %s", tx.txid, outcome.value, extra={"txid": tx.txid})
            _crash("complete.after-log")
        return pending

    def deliver_many(
        self, txs: Sequence[LiveTransaction], outcome: Outcome
    ) -> dict[str, list[Member]]:
        """Deliver one outcome to many 2PC transactions, batching where participants can.

        A participant object enlisted in several of them that has ``commit_many(txids)`` /
        ``rollback_many(txids)`` gets one call for all; everyone else gets the usual
        per-transaction calls. Returns the pending members per txid.
        """
        method = "commit_many" if outcome is Outcome.COMMIT else "rollback_many"
        groups: dict[int, tuple[Any, list[tuple[LiveTransaction, Member]]]] = {}
        for tx in txs:
            if tx.mode is Mode.SAGA:
                continue
            for m in tx.members:
                if not m.state.done and callable(getattr(m.obj, method, None)):
                    groups.setdefault(id(m.obj), (m.obj, []))[1].append((tx, m))
        earlier: dict[str, list[LogRecord]] = {}
        for obj, items in groups.values():
            txids = [tx.txid for tx, _ in items]
            name = items[0][1].name
            result = self.policy.call(
                _bind_many(obj, method, txids),
                name=name,
                txid=",".join(txids[:3]),
                phase=method,
                clock=self.clock,
                retry_any=True,
            )
            if not result.ok:
                continue  # each transaction then tries its own call
            for tx, member in items:
                earlier.setdefault(tx.txid, []).append(self._ack(tx, member, outcome))
        return {tx.txid: self.deliver(tx, outcome, earlier.get(tx.txid, ())) for tx in txs}

    def _ack(self, tx: LiveTransaction, member: Member, outcome: Outcome) -> LogRecord:
        member.state = {
            Outcome.COMMIT: ParticipantState.COMMITTED,
            Outcome.ROLLBACK: ParticipantState.ROLLED_BACK,
            Outcome.SKIP: ParticipantState.SKIPPED,
        }[outcome]
        return self.record(RecordType.ACKNOWLEDGED, tx, participant=member.name, outcome=outcome)

    def _failed(self, tx: LiveTransaction, member: Member, result: CallResult) -> LogRecord:
        member.attempts += result.attempts
        member.last_error = result.error_text
        return self.record(
            RecordType.FAILED,
            tx,
            participant=member.name,
            error=result.error_text,
            attempts=result.attempts,
        )

    def _unavailable(self, tx: LiveTransaction, member: Member) -> CallResult:
        error = ParticipantUnavailableError(member.unavailable or f"{member.name} unavailable")
        return CallResult(member.name, False, 0, error)

    def _deliver_two_phase(self, tx: LiveTransaction, outcome: Outcome) -> list[LogRecord]:
        phase = "commit" if outcome is Outcome.COMMIT else "rollback"
        todo = [m for m in tx.members if not m.state.done]
        records: list[LogRecord] = []
        live = [m for m in todo if m.obj is not None]
        for m in todo:
            if m.obj is None:
                records.append(self._failed(tx, m, self._unavailable(tx, m)))
        calls = [
            (m.name, self._call(tx, m, phase, _bind_phase2(m.obj, phase, tx.txid), True))
            for m in live
        ]
        acked = 0

        def on_result(result: CallResult) -> None:
            nonlocal acked
            if result.ok:
                acked += 1
                if acked == 1:
                    _crash(f"{phase}.after-first")

        results = run_parallel(
            self.pool,
            calls,
            self.phase2_timeout,
            tx.txid,
            phase,
            on_result,
            self.inline,
            _keys(phase, live),
        )
        for member, result in zip(live, results, strict=True):
            if result.ok:
                log.debug("txid=%s %s acknowledged by %s", tx.txid, phase, member.name)
                records.append(self._ack(tx, member, outcome))
            else:
                records.append(self._failed(tx, member, result))
        if all(r.ok for r in results):
            _crash(f"{phase}.after-all")
        return records

    def _deliver_saga(self, tx: LiveTransaction, outcome: Outcome) -> list[LogRecord]:
        records: list[LogRecord] = []
        if outcome is Outcome.COMMIT:
            return [self._ack(tx, m, Outcome.COMMIT) for m in tx.members if not m.state.done]
        for member in reversed(tx.members):
            if member.state.done:
                continue
            if member.state is not ParticipantState.PREPARED and not member.started:
                records.append(self._ack(tx, member, Outcome.SKIP))
                continue
            if member.obj is None:
                records.append(self._failed(tx, member, self._unavailable(tx, member)))
                continue
            result = self._call(
                tx, member, "compensation", _bind_compensate(member.obj, tx.txid), True
            )(threading.Event())
            if result.ok:
                records.append(self._ack(tx, member, Outcome.ROLLBACK))
                _crash("saga.after-compensation")
            else:  # logged by the policy; the remaining compensations still run
                records.append(self._failed(tx, member, result))
        return records


def _keys(phase: str, members: Iterable[Member]) -> list[Hashable]:
    """What the inline tracker knows a call by: phase, participant class and name."""
    return [(phase, type(m.obj).__qualname__, m.name) for m in members]


def _bind_prepare(obj: Any, txid: str, data: Mapping[str, Any]) -> Callable[[], object]:
    return lambda: obj.prepare(txid, data)


def _bind_one_phase(obj: Any, txid: str, data: Mapping[str, Any]) -> Callable[[], object]:
    return lambda: obj.commit_one_phase(txid, data)


def _bind_many(obj: Any, method: str, txids: list[str]) -> Callable[[], object]:
    call = getattr(obj, method)
    return lambda: call(list(txids))


def _bind_action(obj: Any, txid: str, data: Mapping[str, Any]) -> Callable[[], object]:
    return lambda: obj.action(txid, data)


def _bind_compensate(obj: Any, txid: str) -> Callable[[], object]:
    return lambda: obj.compensate(txid)


def _bind_phase2(obj: Any, phase: str, txid: str) -> Callable[[], object]:
    method = obj.commit if phase == "commit" else obj.rollback
    return lambda: method(txid)
