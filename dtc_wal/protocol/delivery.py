"""After the decision: delivering the outcome in rounds, recovery, operators, failed appends.

A *round* sends the outcome to every member that is not settled: 2PC members all at once
(commit to the prepared; rollback to all but read-only voters), saga steps one at a time in
reverse order (compensate every step whose action completed and the first step without a
StepDone record -- it may have run, or failed half-way -- and skip every step after it).
A failed call is recorded and the round goes on without it. When the round's last call has
answered, one lazy append carries the round's Failed records and its acknowledgements
(Ended when nothing is left pending, Acked otherwise), and Finish reports the result.
:class:`~.events.Recover` on the idle machine starts another round for what is pending.
"""

from __future__ import annotations

from .commands import Call, Command, Decision
from .core import Core, Phase
from .errors import InvalidEventError
from .events import AppendFailed, CallFailed, Recover, Resolve, Rollback
from .records import Acked, Decided, Ended, Failed, Record, Resolved
from .vocabulary import SETTLED, MemberState, Mode, Op, Outcome, Retry, Vote

__all__ = ["PRESUMED_ABORT", "Delivery"]

PRESUMED_ABORT = "presumed abort: no decision in the log when recovery found it"


class Delivery(Core):
    """The rules after the decision (the layer under :class:`~.machine.Machine`)."""

    __slots__ = ()

    def decide_abort(
        self,
        now: float,
        reason: str,
        actor: str | None,
        member: int | None,
        error: str | None,
        before: tuple[Record, ...] = (),
    ) -> list[Command]:
        """Decide abort -- lazily: presumed abort covers its loss -- and start the round.
        ``member``/``error``: whose failure decided it."""
        self.outcome = Outcome.ABORT
        self._abort = (reason, member, error)
        votes = self._votes
        read_only = frozenset(i for i, v in enumerate(votes) if v is Vote.READ_ONLY)
        if self._log_failed is not None:
            return self.deliver(now, read_only)  # nothing more is written
        cast = tuple((i, v) for i, v in enumerate(votes) if v is not None)
        decided = Decided(self.txid, now, Outcome.ABORT, cast, reason, actor)
        return [self.append((*before, decided), False), *self.deliver(now, read_only)]

    def deliver(self, now: float, read_only: frozenset[int] = frozenset()) -> list[Command]:
        """Start a round for the decided outcome (``read_only`` voters are left out)."""
        outcome = self.outcome
        assert outcome is not None
        commands: list[Command] = []
        if not self._decision_sent:
            self._decision_sent = True
            commands.append(Decision(outcome))
        tx = self._tx
        if tx is not None and tx.ended:  # its Ended went with the decision
            return commands + self.finish()
        self._phase = Phase.DELIVERING
        self._targets, self._queue, self._acks, self._failures = [], [], [], []
        self._errors = {}
        if tx is not None:
            states = [m.state for m in tx.members]
        else:  # the opening record was not written: were prepares sent all the same?
            states = [MemberState.ENLISTED] * len(self._votes) if self._may_have_run else []
        timeout = self.options.phase2_timeout
        deadline = None if timeout is None else now + timeout
        if self.mode is Mode.SAGA:
            if outcome is Outcome.ABORT:
                self._plan_compensation(states)
                if self._queue:
                    i = self._queue.pop()
                    self._outstanding[i] = Op.COMPENSATE
                    commands.append(Call(i, Op.COMPENSATE, deadline, Retry.ANY))
        else:
            op = Op.COMMIT if outcome is Outcome.COMMIT else Op.ROLLBACK
            targets = self._targets = [
                i for i, state in enumerate(states) if state not in SETTLED and i not in read_only
            ]
            outstanding = self._outstanding
            for i in targets:
                if i not in outstanding:  # else its prepare is in flight: see forward_ended
                    outstanding[i] = op
                    commands.append(Call(i, op, deadline, Retry.ANY))
        if not self._outstanding:
            return commands + self._end_round(now)
        return commands

    def _plan_compensation(self, states: list[MemberState]) -> None:
        """Compensate, last first, every unsettled step whose action completed, and the first
        step not known done if an action may have started; skip every other step."""
        boundary = True
        for i, state in enumerate(states):
            if state is MemberState.STEP_DONE:
                self._targets.append(i)
            elif state is MemberState.ENLISTED:
                if boundary and self._may_have_run:
                    self._targets.append(i)
                else:
                    self._acks.append((i, MemberState.SKIPPED))
                boundary = False
            elif state is MemberState.SKIPPED:
                boundary = False
        self._queue = list(self._targets)  # popped from the end: last step first

    def _call(self, now: float, member: int, op: Op) -> list[Command]:
        timeout = self.options.phase2_timeout
        self._outstanding[member] = op
        return [Call(member, op, None if timeout is None else now + timeout, Retry.ANY)]

    def forward_ended(self, now: float, member: int) -> list[Command]:
        """A prepare in flight at the abort decision ended. Its answer is not a vote (the
        decision is taken), but the member may hold prepared work now: roll it back."""
        if self._phase is not Phase.DELIVERING:
            return []
        if member in self._targets:
            return self._call(now, member, Op.ROLLBACK)
        return [] if self._outstanding or self._queue else self._end_round(now)

    def delivered(self, now: float, member: int, op: Op) -> list[Command]:
        state = MemberState.COMMITTED if op is Op.COMMIT else MemberState.ROLLED_BACK
        self._acks.append((member, state))
        if self._queue:
            return self._call(now, self._queue.pop(), Op.COMPENSATE)
        if self._outstanding:
            return []
        return self._end_round(now)

    def delivery_failed(self, event: CallFailed, member: int) -> list[Command]:
        """Recorded; the member stays pending and the round goes on without it."""
        now = event.now
        self._failures.append(Failed(self.txid, now, member, event.op, event.error, event.attempts))
        self._errors[member] = event.error
        if self._queue:
            return self._call(now, self._queue.pop(), Op.COMPENSATE)
        if self._outstanding:
            return []
        return self._end_round(now)

    def _end_round(self, now: float) -> list[Command]:
        acks = tuple(self._acks)
        pending: tuple[int, ...] = ()  # every target answered: failed ones are pending
        if self._failures:
            acked = {i for i, _ in acks}
            pending = tuple(i for i in self._targets if i not in acked)
        records: tuple[Record, ...] = tuple(self._failures)
        if not pending:
            records += (Ended(self.txid, now, acks),)
        elif acks:
            records += (Acked(self.txid, now, acks),)
        errors = tuple(self.last_error(i) for i in pending)
        if records and self._log_failed is None:
            return [self.append(records, False), *self.finish(pending, errors)]
        return self.finish(pending, errors)

    # -- recovery and operators ------------------------------------------------------------

    def check_log(self) -> None:
        if self._log_failed is not None:
            raise InvalidEventError(
                f"transaction {self.txid}: an append failed ({self._log_failed}); seed a new "
                "machine from what the log holds"
            )

    def on_recover(self, event: Recover) -> list[Command]:
        if self._phase is not Phase.IDLE or self._tx is None or self._tx.ended:
            raise InvalidEventError(f"transaction {self.txid} has nothing to recover now")
        self.check_log()
        if self.outcome is None:
            return self.decide_abort(event.now, PRESUMED_ABORT, None, None, None)
        return self.deliver(event.now)

    def operator_abort(self, event: Rollback) -> list[Command]:
        """An operator decides a transaction found undecided in the log: on disk first, and
        delivered by a later Recover."""
        self.check_log()
        decided = Decided(self.txid, event.now, Outcome.ABORT, (), event.reason, event.actor)
        self._abort = (event.reason, None, None)
        return self.wait((decided,), Phase.RECORDING, self._operator_decided)

    def _operator_decided(self, now: float) -> list[Command]:
        self.outcome = Outcome.ABORT
        return self.finish_pending()

    def on_resolve(self, event: Resolve) -> list[Command]:
        if self._phase is not Phase.IDLE:
            raise InvalidEventError(
                f"transaction {self.txid} is being driven: resolve it once that run finished"
            )
        self.check_log()
        return self.wait(self._resolutions(event), Phase.RECORDING, self._resolved)

    def _resolved(self, now: float) -> list[Command]:
        return self.finish_pending()

    def _resolutions(self, event: Resolve) -> tuple[Record, ...]:
        tx = self._tx
        if tx is None or tx.outcome is None:
            raise InvalidEventError(
                f"transaction {self.txid} has no decision yet: decide it (Rollback) before "
                "resolving members"
            )
        if not event.reason or not event.reason.strip():
            raise InvalidEventError("say why: a resolution needs a reason for the log")
        pending = tx.pending()
        if event.member is None:
            targets = pending
        elif event.member in pending:
            targets = [event.member]
        else:
            names = ", ".join(tx.members[i].name for i in pending) or "none"
            raise InvalidEventError(
                f"member {event.member} is not pending in {self.txid} (pending: {names})"
            )
        if not targets:
            raise InvalidEventError(f"transaction {self.txid} has no pending member")
        if event.outcome is not tx.outcome and not event.heuristic:
            raise InvalidEventError(
                f"transaction {self.txid} is decided {tx.outcome.value}; resolving a member "
                f"to {event.outcome.value} contradicts it -- if that is what happened, mark "
                "the resolution heuristic"
            )
        records: tuple[Record, ...] = tuple(
            Resolved(self.txid, event.now, i, event.outcome, event.actor, event.reason)
            for i in targets
        )
        if len(targets) == len(pending):
            records += (Ended(self.txid, event.now),)
        return records

    def on_append_failed(self, event: AppendFailed) -> list[Command]:
        """Append ``event.append`` was not written (nor any later one)."""
        if not self.forget_appends(event.append):
            raise InvalidEventError(f"transaction {self.txid}: no append {event.append}")
        self._log_failed = error = event.error
        if event.append != self._waiting:
            # A lazy append: nothing waits for it. The run goes on and appends nothing more
            # (later records would not fold on what the log holds).
            return []
        phase = self._phase
        self._then = self._waiting = None
        if phase is Phase.RECORDING:  # an operator's record was not written
            if self.outcome is None:  # an abort decision: still abort, by presumption
                self.outcome = Outcome.ABORT
                self._abort = (self._abort[0], None, error)
            return self.finish_pending()
        what = {
            Phase.OPENING: "the transaction could not be logged",
            Phase.DECIDING: "the commit decision could not be logged",
            Phase.STEPPING: "a saga step could not be logged",
        }[phase]
        return self.decide_abort(event.now, f"{what} ({error})", None, None, error)
