"""Phase two: deliver a decided outcome to every participant that has not acknowledged it
(also many transactions at once, batched through ``commit_many``/``rollback_many``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from ..drivers.calls import CallResult, run_parallel
from ..errors import ParticipantUnavailableError
from ..records import LogRecord
from ..states import Mode, Outcome, ParticipantState, RecordType
from .live import LiveTransaction, Member
from .steps import DriverBase, bind_compensate, bind_many, bind_phase2, call_keys, crash

__all__ = ["PhaseTwo"]

log = logging.getLogger("dtc_wal.coordinator")


class PhaseTwo(DriverBase):
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
            crash("complete.after-log")
        return pending

    def deliver_many(
        self, txs: Sequence[LiveTransaction], outcome: Outcome
    ) -> dict[str, list[Member]]:
        """Deliver one outcome to many 2PC transactions, batching where participants can.

        A participant object enlisted in several of them that has ``commit_many(txids)`` /
        ``rollback_many(txids)`` gets one call for all; everyone else gets the usual
        per-transaction calls. Returns the pending members per txid.
        """
        commit = outcome is Outcome.COMMIT
        method = "commit_many" if commit else "rollback_many"
        groups: dict[int, tuple[Any, list[tuple[LiveTransaction, Member]]]] = {}
        for tx in txs:
            if tx.mode is Mode.SAGA:
                continue
            for m in tx.members:
                batches = m.abilities.commit_many if commit else m.abilities.rollback_many
                if not m.state.done and batches:
                    groups.setdefault(id(m.obj), (m.obj, []))[1].append((tx, m))
        earlier: dict[str, list[LogRecord]] = {}
        for obj, items in groups.values():
            txids = [tx.txid for tx, _ in items]
            name = items[0][1].name
            result = self.policy.call(
                bind_many(obj, method, txids),
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
            (m.name, self._call(tx, m, phase, bind_phase2(m.obj, phase, tx.txid), True))
            for m in live
        ]
        acked = 0

        def on_result(result: CallResult) -> None:
            nonlocal acked
            if result.ok:
                acked += 1
                if acked == 1:
                    crash(f"{phase}.after-first")

        results = run_parallel(
            self.pool,
            calls,
            self.phase2_timeout,
            tx.txid,
            phase,
            on_result,
            self.inline,
            call_keys(phase, live),
        )
        for member, result in zip(live, results, strict=True):
            if result.ok:
                log.debug("txid=%s %s acknowledged by %s", tx.txid, phase, member.name)
                records.append(self._ack(tx, member, outcome))
            else:
                records.append(self._failed(tx, member, result))
        if all(r.ok for r in results):
            crash(f"{phase}.after-all")
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
            data = tx.data if member.takes_data else None
            result = self._call(
                tx, member, "compensation", bind_compensate(member.obj, tx.txid, data), True
            )(threading.Event())
            if result.ok:
                records.append(self._ack(tx, member, Outcome.ROLLBACK))
                crash("saga.after-compensation")
            else:  # logged by the policy; the remaining compensations still run
                records.append(self._failed(tx, member, result))
        return records
