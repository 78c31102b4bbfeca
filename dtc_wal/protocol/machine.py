"""The transaction machine: events in, commands out (docs/architecture.md).

One :class:`Machine` per transaction, created at begin; members join with
:meth:`Machine.enlist`; :meth:`Machine.handle` takes an event and returns the commands it
leads to. It does no I/O, reads no clock, starts no thread and draws no random number: the
same events give the same commands. A machine seeded from a folded transaction
(:meth:`Machine.recover`) is the same machine after a restart.

Here: joining, the forward phase (prepare, saga actions, one-phase commit) and the commit
decision. After the decision: :mod:`.delivery`.

Answers that come late are ignored: an answer counts only while its ``(member, op)`` call
is in flight, and a driver reports each call once. After an abort decision a prepare still
in flight is no vote any more; its answer, whatever it says, only frees that member for its
rollback (a member never has two calls in flight).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .commands import Call, Command
from .core import Phase
from .delivery import PRESUMED_ABORT, Delivery
from .errors import DuplicateMemberError, InvalidEventError, InvalidMemberError, MixedModeError
from .events import (
    Acknowledged,
    AppendFailed,
    CallFailed,
    Commit,
    Durable,
    Event,
    Recover,
    Resolve,
    Rollback,
    Voted,
)
from .options import Options
from .records import Decided, Ended, MemberSpec, Opened, Record, StepDone
from .transaction import Transaction
from .vocabulary import FORWARD_OPS, MemberState, Mode, Op, Outcome, Retry, Vote

__all__ = ["PRESUMED_ABORT", "Machine"]

_DEFAULTS = Options()


class Machine(Delivery):
    """The protocol of one transaction: 2PC (with one-phase commit), or an ordered saga.

    Read-only attributes: ``txid``; ``opened_at`` (when it began); ``options``; ``mode``
    (None until the first member joins); ``outcome`` (None until decided -- after a failed
    append it may be abort while the records show no decision); ``members``, ``data``,
    ``transaction`` and ``running`` (properties).
    """

    __slots__ = (
        "_data",
        "_lists",
        "_names",
        "_one_phase",
        "_specs",
        "_step",
        "_voted",
        "opened_at",
    )

    def __init__(self, txid: str, now: float, options: Options | None = None) -> None:
        super().__init__(txid, options or _DEFAULTS)
        self.opened_at = now
        self._specs: list[MemberSpec] = []
        self._names: set[str] = set()
        self._lists: list[bool] = []  # lists_prepared, by position
        self._one_phase: list[bool] = []  # commit_one_phase, by position
        self._data: Mapping[str, Any] | None = None
        self._voted = 0
        self._step = 0  # saga: the step whose action is in flight or awaits its record

    @classmethod
    def recover(cls, transaction: Transaction, options: Options | None = None) -> Machine:
        """A machine for a transaction read from the log (it works on a copy). Idle until
        :class:`~.events.Recover` (deliver the outcome the records imply, presuming abort
        when undecided), :class:`~.events.Rollback` (an operator's abort decision) or
        :class:`~.events.Resolve`."""
        if transaction.ended:
            raise InvalidEventError(f"transaction {transaction.txid} has ended: nothing to do")
        machine = cls(transaction.txid, transaction.opened_at, options)
        machine._seed = transaction.copy()
        machine._tx = transaction.copy()
        machine.mode = transaction.mode
        machine._specs = [MemberSpec(m.name, m.factory, m.params) for m in transaction.members]
        machine._names = {m.name for m in transaction.members}
        machine._votes = [None] * len(machine._specs)
        machine._data = transaction.data
        machine.outcome = transaction.outcome
        machine._phase = Phase.IDLE
        machine._may_have_run = True  # the log cannot say whether the first action started
        return machine

    @property
    def members(self) -> tuple[MemberSpec, ...]:
        return tuple(self._specs)

    @property
    def data(self) -> Mapping[str, Any] | None:
        """The commit data (None before commit, or when there was none)."""
        return self._data

    @property
    def running(self) -> bool:
        """True while a run has calls in flight or waits for a sync."""
        return self._phase is not Phase.OPEN and self._phase is not Phase.IDLE

    def enlist(
        self,
        spec: MemberSpec,
        mode: Mode,
        *,
        lists_prepared: bool = False,
        commit_one_phase: bool = False,
    ) -> int:
        """Add a member; return its position. The first member fixes the mode.

        ``lists_prepared`` and ``commit_one_phase`` are a 2PC member's abilities: a
        registered resource can list its prepared work (so the opening record need not be
        forced before prepare), and it can commit in one call when it is alone.
        """
        if self._phase is not Phase.OPEN:
            raise InvalidEventError(f"transaction {self.txid}: members join before commit")
        if self.mode is not None and mode is not self.mode:
            raise MixedModeError(
                f"transaction {self.txid} is a {self.mode.value} transaction; it cannot take "
                f"a {mode.value} member too"
            )
        if mode is Mode.SAGA and (lists_prepared or commit_one_phase):
            raise InvalidMemberError(
                "lists_prepared and commit_one_phase are abilities of 2PC members, not of saga "
                "steps"
            )
        name = spec.name
        if not isinstance(name, str) or not name:
            raise InvalidMemberError("a member name is a non-empty string")
        if name in self._names:
            raise DuplicateMemberError(f"transaction {self.txid} already has a member {name!r}")
        self.mode = mode
        self._names.add(name)
        self._specs.append(spec)
        self._lists.append(lists_prepared)
        self._one_phase.append(commit_one_phase)
        self._votes.append(None)
        return len(self._specs) - 1

    def handle(self, event: Event) -> list[Command]:
        """Take one event; return the commands it leads to, in order.

        Raises :class:`~.errors.InvalidEventError`, changing nothing, for an event the
        machine cannot take now. Answers to calls no longer in flight are ignored.
        """
        return _HANDLERS[type(event)](self, event)

    # -- the forward phase -----------------------------------------------------------------

    def _opened(self, data: Mapping[str, Any] | None) -> Opened:
        self.mode = mode = self.mode or Mode.TWO_PHASE
        return Opened(self.txid, self.opened_at, mode, tuple(self._specs), data)

    def _on_commit(self, event: Commit) -> list[Command]:
        if self._phase is not Phase.OPEN:
            raise InvalidEventError(f"transaction {self.txid} is already committing or finished")
        now = event.now
        self._data = event.data
        if self.options.one_phase and len(self._specs) == 1 and self._one_phase[0]:
            return self._forward(now, Op.COMMIT_ONE_PHASE, 0)  # the member's commit decides
        opened = self._opened(event.data)
        if self.mode is Mode.SAGA:
            return self.wait((opened,), Phase.OPENING, self._act)
        if all(self._lists):
            # Every member's prepared work can be listed, and recovery rolls back what has
            # no commit decision: the opening record may ride the decision's sync.
            if not self._specs:
                return self._decide_commit(now, (opened,))
            return [self.append((opened,), False), *self._prepare(now)]
        return self.wait((opened,), Phase.OPENING, self._prepare)

    def _forward(self, now: float, op: Op, member: int) -> list[Command]:
        timeout = self.options.prepare_timeout
        self._phase = Phase.FORWARD
        self._may_have_run = True
        self._outstanding[member] = op
        return [Call(member, op, None if timeout is None else now + timeout, Retry.TRANSIENT)]

    def _prepare(self, now: float) -> list[Command]:
        timeout = self.options.prepare_timeout
        deadline = None if timeout is None else now + timeout
        self._phase = Phase.FORWARD
        self._may_have_run = True
        n = len(self._specs)
        self._outstanding = dict.fromkeys(range(n), Op.PREPARE)
        return [Call(i, Op.PREPARE, deadline, Retry.TRANSIENT) for i in range(n)]

    def _act(self, now: float) -> list[Command]:
        return self._forward(now, Op.ACTION, self._step)

    def _next_step(self, now: float) -> list[Command]:
        self._step += 1
        return self._forward(now, Op.ACTION, self._step)

    def _on_durable(self, event: Durable) -> list[Command]:
        then = self._then
        if event.append != self._waiting or then is None:
            raise InvalidEventError(f"transaction {self.txid}: append {event.append} not awaited")
        self._then = self._waiting = None
        return then(event.now)

    def _on_voted(self, event: Voted) -> list[Command]:
        i = event.member
        if self._outstanding.get(i) is not Op.PREPARE:
            return []  # late or repeated: not a vote
        del self._outstanding[i]
        if self._phase is not Phase.FORWARD:
            return self.forward_ended(event.now, i)
        self._votes[i] = event.vote
        self._voted += 1
        if self._voted < len(self._specs):
            return []
        return self._decide_commit(event.now, ())

    def _on_acknowledged(self, event: Acknowledged) -> list[Command]:
        i, op = event.member, event.op
        if op is Op.PREPARE:
            raise InvalidEventError("a prepare is answered with Voted, not Acknowledged")
        if self._outstanding.get(i) is not op:
            return []  # late or repeated
        del self._outstanding[i]
        if op not in FORWARD_OPS:
            return self.delivered(event.now, i, op)
        if self._phase is not Phase.FORWARD:
            return self.forward_ended(event.now, i)
        if op is Op.COMMIT_ONE_PHASE:
            return self._one_phase_committed(event.now)
        if i == len(self._specs) - 1:
            return self._decide_commit(event.now, ())  # the last step's record: the decision
        if self._log_failed is not None:
            reason = f"a saga step could not be logged ({self._log_failed})"
            return self.decide_abort(event.now, reason, None, None, self._log_failed)
        # Invariant: step i is on disk before step i+1 starts, so after a crash at most the
        # first step without a StepDone record may have run.
        return self.wait((StepDone(self.txid, event.now, i),), Phase.STEPPING, self._next_step)

    def _one_phase_committed(self, now: float) -> list[Command]:
        self.outcome = Outcome.COMMIT
        if self._log_failed is not None:
            return self.finish()
        records = (
            self._opened(self._data),
            Decided(self.txid, now, Outcome.COMMIT, ((0, Vote.YES),)),
            Ended(self.txid, now, ((0, MemberState.COMMITTED),)),
        )
        return [self.append(records, False), *self.finish()]

    def _on_call_failed(self, event: CallFailed) -> list[Command]:
        i, op = event.member, event.op
        if self._outstanding.get(i) is not op:
            return []  # late or repeated
        del self._outstanding[i]
        if op not in FORWARD_OPS:
            return self.delivery_failed(event, i)
        if self._phase is not Phase.FORWARD:
            return self.forward_ended(event.now, i)
        name = self._specs[i].name
        before: tuple[Record, ...] = ()
        if op is Op.PREPARE:
            reason = f"{name} voted no in prepare ({event.error})"
        elif op is Op.COMMIT_ONE_PHASE:
            reason = f"{name} refused the one-phase commit ({event.error})"
            before = (self._opened(self._data),)
        else:
            reason = f"saga step {name} failed ({event.error})"
        return self.decide_abort(event.now, reason, None, i, event.error, before)

    # -- the decision ----------------------------------------------------------------------

    def _decide_commit(self, now: float, before: tuple[Record, ...]) -> list[Command]:
        if self._log_failed is not None:
            reason = f"the commit decision could not be logged ({self._log_failed})"
            return self.decide_abort(now, reason, None, None, self._log_failed)
        votes = self._votes
        cast: tuple[tuple[int, Vote], ...] = ()
        if self.mode is Mode.TWO_PHASE:
            cast = tuple(enumerate(votes))  # type: ignore[arg-type]  # every member voted
        decided = Decided(self.txid, now, Outcome.COMMIT, cast)
        if self.mode is Mode.SAGA or Vote.YES not in votes:  # nothing to deliver
            records: tuple[Record, ...] = (*before, decided, Ended(self.txid, now))
        else:
            records = (*before, decided)
        return self.wait(records, Phase.DECIDING, self._commit_durable)

    def _commit_durable(self, now: float) -> list[Command]:
        self.outcome = Outcome.COMMIT
        return self.deliver(now)

    def _on_rollback(self, event: Rollback) -> list[Command]:
        if self._phase is Phase.OPEN:
            opened = self._opened(None)
            return self.decide_abort(event.now, event.reason, event.actor, None, None, (opened,))
        if self._phase is Phase.IDLE and self._tx is not None and self.outcome is None:
            return self.operator_abort(event)
        raise InvalidEventError(
            f"transaction {self.txid} is committing or decided: it cannot be rolled back now"
        )


_HANDLERS: dict[type, Callable[[Machine, Any], list[Command]]] = {
    Commit: Machine._on_commit,
    Rollback: Machine._on_rollback,
    Recover: Machine.on_recover,
    Durable: Machine._on_durable,
    AppendFailed: Machine.on_append_failed,
    Voted: Machine._on_voted,
    Acknowledged: Machine._on_acknowledged,
    CallFailed: Machine._on_call_failed,
    Resolve: Machine.on_resolve,
}
