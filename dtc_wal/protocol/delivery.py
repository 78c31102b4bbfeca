"""The half of a machine after the decision: delivering the outcome in rounds, operator
resolutions, finishing -- and the log bookkeeping both halves share.

A *round* sends the outcome to every member that is not settled: 2PC members all at once
(commit to the prepared, rollback to all but read-only voters), saga steps one by one in
reverse order (compensate every step whose action completed, and the first step without a
StepDone record -- it may have run, or failed half-way; skip every step after it). A failed
call is recorded and the round goes on. When the last call of a round has answered, one
lazy append carries the round's Failed records and its acknowledgements (Ended when nothing
is left pending, Acked otherwise), and a Finish reports the result. Another
:class:`~.events.Recover` on the idle machine starts another round for what is pending.
"""

from __future__ import annotations

import enum

from .commands import Append, Call, Command, Decision, Finish
from .errors import InvalidEventError
from .events import CallFailed, Resolve
from .options import Options
from .records import Acked, Ended, Failed, Record, Resolved
from .transaction import Member, Transaction
from .vocabulary import MemberState, Mode, Op, Outcome, Retry

__all__ = ["Delivery", "Phase"]


class Phase(enum.Enum):
    """Where a machine's run stands (internal; ``Machine.running`` is the public part)."""

    OPEN = "open"  # live, members may join
    OPENING = "opening"  # waiting for the opening record's sync
    FORWARD = "forward"  # prepare / action / one-phase calls in flight
    STEPPING = "stepping"  # saga: waiting for a StepDone sync
    DECIDING = "deciding"  # waiting for the commit decision's sync
    DELIVERING = "delivering"  # phase two or compensations in flight
    RECORDING = "recording"  # waiting for an operator's record to sync
    IDLE = "idle"  # no run: seeded, or a run finished


class Delivery:
    """State shared by the whole machine, and the rules after the decision."""

    __slots__ = (
        "_acks",
        "_appended",
        "_errors",
        "_failures",
        "_next_id",
        "_queue",
        "_seed",
        "_targets",
        "_waiting",
        "abort",
        "decision_sent",
        "log_failed",
        "may_have_run",
        "mode",
        "options",
        "outcome",
        "outstanding",
        "phase",
        "tx",
    )

    txid: str

    def __init__(self, options: Options) -> None:
        self.options = options
        self.mode: Mode | None = None
        self.tx: Transaction | None = None
        self._seed: Transaction | None = None  # what a seeded machine started from
        self.outcome: Outcome | None = None
        self.phase = Phase.OPEN
        self.outstanding: dict[int, Op] = {}  # member -> the op of its call in flight
        self.may_have_run = False  # saga: the first step without StepDone may have run
        self.log_failed: str | None = None  # the log's error once an append failed
        self.abort: tuple[str | None, int | None, str | None] = (None, None, None)
        self.decision_sent = False
        self._next_id = 0
        self._appended: list[tuple[int, tuple[Record, ...]]] = []  # for a refold
        self._waiting: int | None = None
        self._targets: list[int] = []
        self._queue: list[int] = []
        self._acks: list[tuple[int, MemberState]] = []
        self._failures: list[Failed] = []
        self._errors: dict[int, str] = {}

    @property
    def transaction(self) -> Transaction | None:
        """What this machine's records say (None before it wrote its opening record). It
        equals ``fold`` of the records it appended -- with a seeded machine's records first
        -- until an append fails; then it is what the log holds without the failed ones."""
        return self.tx

    def pending(self) -> list[int]:
        return self.tx.pending() if self.tx is not None else []

    def forget_appends(self, append: int) -> bool:
        """Append ``append`` failed: it and every later append are not in the log. Rebuild
        the transaction without them; False when no such append was made."""
        ids = [i for i, _ in self._appended]
        if append not in ids:
            return False
        self._appended = kept = self._appended[: ids.index(append)]
        tx = self._seed.copy() if self._seed is not None else None
        for record in (r for _, records in kept for r in records):
            if tx is None:
                tx = Transaction.open(record)  # type: ignore[arg-type]
            else:
                tx.apply(record)
        self.tx = tx
        return True

    # -- rounds ----------------------------------------------------------------------------

    def deliver(self, now: float, read_only: frozenset[int] = frozenset()) -> list[Command]:
        """Start a round for the decided outcome (members in ``read_only`` are left out)."""
        outcome = self.outcome
        assert outcome is not None
        commands: list[Command] = []
        if not self.decision_sent:
            self.decision_sent = True
            commands.append(Decision(outcome))
        if self.tx is not None and self.tx.ended:  # its Ended went with the decision
            self.phase = Phase.IDLE
            return commands + self.finish_commands()
        self.phase = Phase.DELIVERING
        self._targets, self._queue, self._acks, self._failures = [], [], [], []
        self._errors = {}
        members = self.tx.members if self.tx is not None else []
        if self.mode is Mode.SAGA:
            if outcome is Outcome.ABORT:
                self._plan_compensation(members)
                if self._queue:
                    commands.append(self._phase_two(now, self._queue.pop(0), Op.COMPENSATE))
        else:
            op = Op.COMMIT if outcome is Outcome.COMMIT else Op.ROLLBACK
            for i, m in enumerate(members):
                if m.state.settled or i in read_only:
                    continue
                self._targets.append(i)
                if i not in self.outstanding:  # else: its prepare is in flight; see below
                    commands.append(self._phase_two(now, i, op))
        if not self.outstanding:
            commands += self._end_round(now)
        return commands

    def _plan_compensation(self, members: list[Member]) -> None:
        """Compensate, last first, every unsettled step whose action completed, and the first
        step not known done if an action may have started; skip every other step."""
        boundary = True
        for i, m in enumerate(members):
            state = m.state
            if state is MemberState.STEP_DONE:
                self._targets.append(i)
            elif state is MemberState.ENLISTED:
                if boundary and self.may_have_run:
                    self._targets.append(i)
                else:
                    self._acks.append((i, MemberState.SKIPPED))
                boundary = False
            elif state is MemberState.SKIPPED:
                boundary = False
        self._queue = self._targets[::-1]

    def _phase_two(self, now: float, member: int, op: Op) -> Call:
        timeout = self.options.phase2_timeout
        self.outstanding[member] = op
        return Call(member, op, None if timeout is None else now + timeout, Retry.ANY)

    def forward_ended(self, now: float, member: int) -> list[Command]:
        """A prepare in flight at the abort decision ended (its answer is not a vote: the
        decision is taken). The member may hold prepared work now: roll it back."""
        if self.phase is not Phase.DELIVERING or member not in self._targets:
            return self._maybe_end(now)
        return [self._phase_two(now, member, Op.ROLLBACK)]

    def delivered(self, now: float, member: int, op: Op) -> list[Command]:
        state = MemberState.COMMITTED if op is Op.COMMIT else MemberState.ROLLED_BACK
        self._acks.append((member, state))
        return self._next(now)

    def delivery_failed(self, event: CallFailed, member: int) -> list[Command]:
        """Recorded; the member stays pending and the round goes on without it."""
        self._failures.append(
            Failed(self.txid, event.now, member, event.op, event.error, event.attempts)
        )
        self._errors[member] = event.error
        return self._next(event.now)

    def _next(self, now: float) -> list[Command]:
        if self._queue:
            return [self._phase_two(now, self._queue.pop(0), Op.COMPENSATE)]
        return self._maybe_end(now)

    def _maybe_end(self, now: float) -> list[Command]:
        if self.outstanding or self._queue or self.phase is not Phase.DELIVERING:
            return []
        return self._end_round(now)

    def _end_round(self, now: float) -> list[Command]:
        acked = {i for i, _ in self._acks}
        pending = tuple(i for i in self._targets if i not in acked)
        records: tuple[Record, ...] = tuple(self._failures)
        acks = tuple(self._acks)
        if not pending:
            records += (Ended(self.txid, now, acks),)
        elif acks:
            records += (Acked(self.txid, now, acks),)
        commands: list[Command] = []
        if records and self.log_failed is None:
            commands.append(self.append(records, False))
        self.phase = Phase.IDLE
        errors = tuple(self._errors.get(i) or self._last_error(i) for i in pending)
        return commands + self.finish_commands(pending, errors)

    def _last_error(self, member: int) -> str:
        tx = self.tx
        return (tx.members[member].error or "") if tx is not None else ""

    def finish_commands(
        self, pending: tuple[int, ...] = (), errors: tuple[str, ...] = ()
    ) -> list[Command]:
        """Finish the run (with the Decision first, if not sent yet)."""
        outcome = self.outcome
        assert outcome is not None
        commands: list[Command] = []
        if not self.decision_sent:
            self.decision_sent = True
            commands.append(Decision(outcome))
        if outcome is Outcome.COMMIT:
            commands.append(Finish(outcome, pending, errors))
            return commands
        reason, member, error = self.abort
        if reason is None and self.tx is not None:
            reason = self.tx.reason
        commands.append(Finish(outcome, pending, errors, reason, member, error))
        return commands

    def idle_finish(self) -> list[Command]:
        self.phase = Phase.IDLE
        pending = tuple(self.pending())
        return self.finish_commands(pending, tuple(self._last_error(i) for i in pending))

    # -- the log ---------------------------------------------------------------------------

    def append(self, records: tuple[Record, ...], durable: bool) -> Append:
        """Fold ``records`` into the transaction and hand them to the log; a durable append
        is awaited (``Durable``) before anything that depends on it."""
        tx = self.tx
        for record in records:
            if tx is None:
                tx = self.tx = Transaction.open(record)  # type: ignore[arg-type]
            else:
                tx.apply(record)
        self._next_id += 1
        self._appended.append((self._next_id, records))
        if durable:
            self._waiting = self._next_id
        return Append(self._next_id, records, durable)

    # -- operators -------------------------------------------------------------------------

    def resolutions(self, event: Resolve) -> tuple[Record, ...]:
        """The records of an operator's resolution (and Ended when nothing is left)."""
        tx = self.tx
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
