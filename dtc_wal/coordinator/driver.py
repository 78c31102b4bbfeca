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

import logging
from collections.abc import Mapping
from typing import Any

from ..drivers.calls import CallResult, run_parallel
from ..records import LogRecord
from ..states import READ_ONLY, Outcome, ParticipantState, RecordType
from .live import LiveTransaction
from .phase_two import PhaseTwo
from .steps import bind_action, bind_one_phase, bind_prepare, call_keys, crash

__all__ = ["Driver"]

log = logging.getLogger("dtc_wal.coordinator")


class Driver(PhaseTwo):
    """Prepare, decide and run sagas; phase two comes from :class:`PhaseTwo`."""

    # -- two-phase commit ----------------------------------------------------------------

    def prepare(self, tx: LiveTransaction, data: Mapping[str, Any]) -> list[CallResult]:
        """Send prepare to every participant at once; return their votes in order."""
        if tx.members and all(m.abilities.lists_prepared for m in tx.members):
            # Every participant can list what it holds prepared, and recovery rolls back
            # whatever the log has no commit decision for: the opening records need not be
            # on disk first. They are queued now and land with (or before) the decision.
            self.wal.append(tx.opening_records(self.clock.now()), wait=False)
            tx.logged = True
        self.log_opening(tx)
        crash("prepare.before-send")
        calls = [
            (m.name, self._call(tx, m, "prepare", bind_prepare(m.obj, tx.txid, data), False))
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
                crash("prepare.after-first")

        results = run_parallel(
            self.pool,
            calls,
            self.prepare_timeout,
            tx.txid,
            "prepare",
            on_result,
            self.inline,
            call_keys("prepare", tx.members),
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
            crash("prepare.after-all")
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
            tx, member, "one-phase commit", bind_one_phase(member.obj, tx.txid, data), False
        )
        (result,) = run_parallel(
            self.pool,
            [(member.name, call)],
            self.prepare_timeout,
            tx.txid,
            "one-phase commit",
            None,
            self.inline,
            call_keys("one-phase", [member]),
        )
        member.attempts += result.attempts
        if not result.ok:
            member.last_error = result.error_text
            return result
        member.state = ParticipantState.PREPARED
        records = tx.opening_records(self.clock.now()) + self._unlogged_prepared(tx)
        tx.logged = True
        records.append(self.record(RecordType.DECIDED_COMMIT, tx, data=data or None))
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
        crash("decision.after-commit-log")

    def decide_abort(self, tx: LiveTransaction, reason: str, actor: str | None = None) -> None:
        """Log yes-votes seen so far and the abort decision, lazily (presumed abort)."""
        records = [] if tx.logged else tx.opening_records(self.clock.now())
        tx.logged = True
        records += self._unlogged_prepared(tx)
        records.append(self.record(RecordType.DECIDED_ABORT, tx, reason=reason, actor=actor))
        self.wal.append(records, wait=False)
        log.info("txid=%s decided abort: %s", tx.txid, reason, extra={"txid": tx.txid})
        crash("decision.after-abort-log")

    # -- sagas -----------------------------------------------------------------------------

    def run_saga(self, tx: LiveTransaction, data: Mapping[str, Any]) -> CallResult | None:
        """Run saga actions in registration order; return the failed call, or None.

        ``data`` is logged with the opening records (compensations get it after a crash),
        as checked: an ``EncodedMap`` keeps its checked bytes."""
        tx.data = data
        self.log_opening(tx)
        last = len(tx.members) - 1
        for i, member in enumerate(tx.members):
            member.started = True
            action = self._call(
                tx, member, "saga action", bind_action(member.obj, tx.txid, data), False
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
                call_keys("action", [member]),
            )
            member.attempts += result.attempts
            if not result.ok:
                member.last_error = result.error_text
                return result
            member.state = ParticipantState.PREPARED
            crash("saga.after-step")
            if i < last:
                # Invariant: step i is on disk before step i+1 starts, so recovery knows
                # that at most the first step without a PREPARED record may have run.
                # The last step's record travels with the commit decision (one sync).
                self.wal.append(self._unlogged_prepared(tx))
                crash("saga.after-step-log")
        return None
