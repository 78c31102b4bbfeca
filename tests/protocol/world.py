"""A driver for one transaction's machine, simulated: a group-commit log, participants,
answers in any order, crashes and restarts; the invariants (checks.py) are checked as it goes.

The log model is group commit: an append is queued; a *sync* makes everything queued so far
durable at once (a durable append's sync carries the lazy records before it); the machine
is told ``Durable`` only after the sync, so a crash can fall between the two. A crash keeps
what was durable and nothing else; the restart folds it and seeds a recovery machine.

Nothing here uses threads, disks or a clock: ``now`` is a counter.
"""

from __future__ import annotations

from collections.abc import Callable

from dtc_wal.protocol import (
    Acknowledged,
    Append,
    AppendFailed,
    Call,
    CallFailed,
    Command,
    Commit,
    Decision,
    Durable,
    Event,
    FailureKind,
    Finish,
    Machine,
    MemberSpec,
    Op,
    Options,
    Outcome,
    Record,
    Recover,
    Resolve,
    Rollback,
    Vote,
    Voted,
    fold,
)

from .checks import Checks, Effects, InvariantError, Setup, _at, check


class World(Checks):
    """Drives one transaction; every ``step_*`` method is one event or one crash."""

    def __init__(self, setup: Setup, options: Options | None = None) -> None:
        self.setup = setup
        self.options = options or Options(one_phase=setup.one_phase)
        self.now = 0.0
        self.durable: list[Record] = []
        self.queued: list[tuple[Append, int]] = []  # (append, generation)
        self.synced: list[int] = []  # durable appends synced, not yet reported
        self.generation = 0
        self.effects = [Effects() for _ in range(setup.members)]
        self.calls: dict[int, Call] = {}  # member -> the call in flight
        self.answered: list[tuple[int, Op]] = []  # calls answered, to answer again late
        self.seed_outcome: Outcome | None = None  # the durable outcome at the last restart
        self.finishes: list[Finish] = []
        self.decisions: list[Outcome] = []
        self.log_failed = False
        self.crashes = 0
        self.one_phase_committed = False
        self.machine: Machine | None = Machine("tx", self.tick(), self.options)
        for i in range(setup.members):
            self.machine.enlist(
                MemberSpec(f"m{i}", "factory", {"i": i}),
                setup.mode,
                lists_prepared=_at(setup.lists_prepared, i),
                commit_one_phase=_at(setup.commit_one_phase, i),
            )

    def tick(self) -> float:
        self.now += 1.0
        return self.now

    # -- feeding the machine ----------------------------------------------------------

    def send(self, event: Event) -> None:
        assert self.machine is not None
        self.run(self.machine.handle(event))
        self.check_fold()

    def run(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, Append):
                self.on_append(command)
            elif isinstance(command, Call):
                self.on_call(command)
            elif isinstance(command, Decision):
                self.on_decision(command)
            else:
                self.on_finish(command)

    def steps(self) -> list[tuple[str, Callable[..., None]]]:
        """What may happen now (a driver that does everything it was asked, in any order);
        the names in :attr:`RARE` are drawn less often."""
        machine = self.machine
        out: list[tuple[str, Callable[..., None]]] = []
        if machine is None:
            return out
        if self.queued:
            out.append(("sync", self.step_sync))
        if self.synced:
            out.append(("report durable", self.step_report))
        if self.calls:
            out.append(("answer", self.step_answer))
        if self.answered:
            out.append(("late answer", self.step_late))
        if self.queued and not self.log_failed:
            out.append(("append fails", self.step_append_fails))
        out.append(("crash", self.step_crash))
        tx = machine.transaction
        if not machine.running:
            if tx is None and machine.outcome is None:
                out.append(("commit", self.step_commit))
                out.append(("rollback", self.step_rollback))
            elif tx is not None and not tx.ended and not self.log_failed:
                if tx.outcome is not None and tx.pending():
                    out.append(("resolve", self.step_resolve))
                if tx.outcome is None and machine.outcome is None:
                    out.append(("operator abort", self.step_operator_abort))
                if self.finishes or self.generation:
                    out.append(("recover", self.step_recover))
        return out

    def step_commit(self, draw: Callable[..., object]) -> None:
        self.send(Commit(self.tick(), {"n": 1}))

    def step_rollback(self, draw: Callable[..., object]) -> None:
        self.send(Rollback(self.tick(), "rolled back by the caller"))

    def step_sync(self, draw: Callable[..., object]) -> None:
        """One sync: everything queued becomes durable (lazy records ride it)."""
        for append, generation in self.queued:
            self.durable.extend(append.records)
            if append.durable and generation == self.generation:
                self.synced.append(append.id)
        self.queued = []

    def step_report(self, draw: Callable[..., object]) -> None:
        self.send(Durable(self.tick(), self.synced.pop(0)))

    def step_append_fails(self, draw: Callable[..., object]) -> None:
        """The oldest queued append fails, and every append behind it of this machine."""
        append, generation = self.queued[0]
        self.queued = []
        self.log_failed = generation == self.generation
        if self.log_failed:
            self.send(AppendFailed(self.tick(), append.id, "LogFullError: the log is full"))

    def step_answer(self, draw: Callable[..., object]) -> None:
        member = draw(sorted(self.calls))
        call = self.calls.pop(member)  # type: ignore[call-overload]
        effects = self.effects[call.member]
        answer = draw(("ok", "refused", "timed-out", "error", "unavailable"))
        now = self.tick()
        event: Event
        if answer == "ok" and call.op is Op.PREPARE:
            vote = draw((Vote.YES, Vote.READ_ONLY))
            effects.votes.append(vote)  # type: ignore[arg-type]
            event = Voted(now, call.member, vote)  # type: ignore[arg-type]
        elif answer == "ok":
            effects.done.append(call.op)
            if call.op is Op.COMMIT_ONE_PHASE:
                self.one_phase_committed = True
            event = Acknowledged(now, call.member, call.op)
        else:
            kind = FailureKind(answer)
            event = CallFailed(now, call.member, call.op, f"{answer} error", 2, kind)
        self.answered.append((call.member, call.op))
        self.send(event)

    def step_late(self, draw: Callable[..., object]) -> None:
        """A call answered once is answered again, maybe differently (a timed-out thread
        that finished after all): the machine must ignore it."""
        member, op = draw(self.answered)  # type: ignore[misc]
        in_flight = self.calls.get(member)
        if in_flight is not None and in_flight.op is op:
            return  # the same call again: an answer would be a real one
        now = self.tick()
        late: Event
        if draw(("ok", "failed")) == "failed":
            late = CallFailed(now, member, op, "late error", 1, FailureKind.ERROR)
        elif op is Op.PREPARE:
            late = Voted(now, member, Vote.YES)
        else:
            late = Acknowledged(now, member, op)
        machine = self.machine
        assert machine is not None
        before = machine.transaction.copy() if machine.transaction else None
        commands = machine.handle(late)
        check(commands == [], f"a late answer led to {commands}")
        check(machine.transaction == before, "a late answer changed the transaction")

    def step_resolve(self, draw: Callable[..., object]) -> None:
        machine = self.machine
        assert machine is not None and machine.transaction is not None
        tx = machine.transaction
        member = draw([None, *tx.pending()])
        heuristic = bool(draw((False, True)))
        decided = tx.outcome
        assert decided is not None
        other = Outcome.ABORT if decided is Outcome.COMMIT else Outcome.COMMIT
        outcome = other if heuristic else decided
        self.send(Resolve(self.tick(), member, outcome, "alice", "by hand", heuristic))  # type: ignore[arg-type]

    def step_recover(self, draw: Callable[..., object]) -> None:
        self.send(Recover(self.tick()))

    def step_operator_abort(self, draw: Callable[..., object]) -> None:
        self.send(Rollback(self.tick(), "decided by hand", "alice"))

    def step_crash(self, draw: Callable[..., object] | None = None) -> None:
        """The process dies: what was synced survives, the rest is gone; then a restart."""
        self.crashes += 1
        self.generation += 1
        self.queued, self.synced, self.calls, self.answered = [], [], {}, []
        self.log_failed = False
        self.finishes, self.decisions = [], self.decisions[-1:]
        if not self.durable:
            self.machine = None  # the log does not know it: nothing to recover
            return
        tx = fold(self.durable)
        self.seed_outcome = tx.outcome
        if tx.ended:
            self.machine = None
            return
        self.machine = Machine.recover(tx, self.options)
        check(self.machine.transaction == tx, "the seeded machine differs from the fold")

    # -- the end ------------------------------------------------------------------------

    def drain(self) -> None:
        """Everything succeeds from now on: drive the transaction to its end."""
        for _ in range(200):
            machine = self.machine
            if machine is None:
                return
            if self.synced:
                self.step_report(_first)
            elif any(a.durable for a, g in self.queued if g == self.generation):
                self.step_sync(_first)
            elif self.calls:
                self.answer_ok()
            elif self.log_failed:
                self.step_crash()
            elif not machine.running:
                tx = machine.transaction
                if tx is None:
                    self.send(Commit(self.tick(), {"n": 1}))
                elif tx.ended:
                    self.step_sync(_first)
                    return
                else:
                    self.step_recover(_first)
        raise InvariantError("the transaction did not end")

    def answer_ok(self) -> None:
        member = min(self.calls)
        call = self.calls.pop(member)
        now = self.tick()
        if call.op is Op.PREPARE:
            self.effects[member].votes.append(Vote.YES)
            self.send(Voted(now, member, Vote.YES))
        else:
            self.effects[member].done.append(call.op)
            if call.op is Op.COMMIT_ONE_PHASE:
                self.one_phase_committed = True
            self.send(Acknowledged(now, member, call.op))

    def sync(self) -> None:
        self.step_sync(_first)


def _first(options: object) -> object:
    return next(iter(options))  # type: ignore[call-overload]
