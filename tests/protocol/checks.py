"""The invariants of the protocol, checked on every command a machine returns (the
observer half of :class:`~.world.World`), and atomicity at the end."""

from __future__ import annotations

import dataclasses

from dtc_wal.protocol import (
    Append,
    Call,
    Decided,
    Decision,
    Finish,
    Machine,
    MemberState,
    Mode,
    Op,
    Opened,
    Options,
    Outcome,
    Record,
    StepDone,
    Vote,
    fold,
)


class InvariantError(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantError(message)


@dataclasses.dataclass
class Setup:
    """One transaction to drive: its mode, members and their abilities."""

    mode: Mode
    members: int
    lists_prepared: tuple[bool, ...] = ()
    commit_one_phase: tuple[bool, ...] = ()
    one_phase: bool = True


@dataclasses.dataclass
class Effects:
    """What one participant saw, across every machine (it survives a crash)."""

    votes: list[Vote] = dataclasses.field(default_factory=list)
    done: list[Op] = dataclasses.field(default_factory=list)  # ops that succeeded
    calls: list[Op] = dataclasses.field(default_factory=list)  # ops sent


class Checks:
    """What the world saw; every ``on_*`` method raises :class:`InvariantError` on a breach."""

    setup: Setup
    options: Options
    machine: Machine | None
    durable: list[Record]
    queued: list[tuple[Append, int]]
    effects: list[Effects]
    calls: dict[int, Call]
    finishes: list[Finish]
    decisions: list[Outcome]
    log_failed: bool
    generation: int
    seed_outcome: Outcome | None
    one_phase_committed: bool

    def sync(self) -> None:
        raise NotImplementedError

    def on_append(self, append: Append) -> None:
        check(not self.log_failed, "an append after a failed one")
        for record in append.records:
            if isinstance(record, Decided) and record.outcome is Outcome.COMMIT:
                self.check_votes(record)
        self.queued.append((append, self.generation))

    def on_call(self, call: Call) -> None:
        i = call.member
        check(i not in self.calls, f"two calls in flight to member {i}")
        durable = self.durable
        if call.op is Op.PREPARE and not all(
            _at(self.setup.lists_prepared, j) for j in range(self.setup.members)
        ):
            check(_has(durable, Opened), "prepare sent before the opening record was durable")
        if call.op is Op.ACTION:
            if i == 0:
                check(_has(durable, Opened), "a saga action before the opening was durable")
            else:
                check(
                    any(isinstance(r, StepDone) and r.index == i - 1 for r in durable),
                    f"step {i} started before StepDone({i - 1}) was durable",
                )
        if call.op is Op.COMMIT:
            check(self.durable_outcome() is Outcome.COMMIT, "commit sent before a durable commit")
        if call.op in (Op.ROLLBACK, Op.COMPENSATE):
            check(self.durable_outcome() is not Outcome.COMMIT, "rollback of a committed tx")
        self.calls[i] = call
        self.effects[i].calls.append(call.op)

    def on_decision(self, decision: Decision) -> None:
        durable = self.durable_outcome()
        if decision.outcome is Outcome.COMMIT:
            check(
                durable is Outcome.COMMIT or self.one_phase_committed,
                "Decision(commit) before the commit decision was durable",
            )
        else:
            check(durable is not Outcome.COMMIT, "Decision(abort) of a durably committed tx")
        if self.decisions:
            check(self.decisions[-1] is decision.outcome, "the decision changed")
        if self.generation and not self.finishes:
            # after a restart: the outcome the log implies (presumed abort when undecided)
            implied = self.seed_outcome or Outcome.ABORT
            check(decision.outcome is implied, "recovery did not follow the log")
        self.decisions.append(decision.outcome)

    def on_finish(self, finish: Finish) -> None:
        machine = self.machine
        assert machine is not None
        check(not self.calls, "Finish with calls in flight")
        check(self.decisions[-1] is finish.outcome, "Finish disagrees with the Decision")
        tx = machine.transaction
        if tx is not None and not self.log_failed:
            check(list(finish.pending) == tx.pending(), f"pending {finish.pending} vs the log")
            check(tx.ended == (not finish.pending), "ended iff nothing pending")
        check(len(finish.errors) == len(finish.pending), "one error per pending member")
        self.finishes.append(finish)

    # -- checks -----------------------------------------------------------------------

    def durable_outcome(self) -> Outcome | None:
        for record in self.durable:
            if isinstance(record, Decided):
                return record.outcome
        return None

    def check_votes(self, decided: Decided) -> None:
        """No commit without every yes vote (or every saga action done)."""
        if self.setup.mode is Mode.SAGA:
            for i, effects in enumerate(self.effects):
                check(Op.ACTION in effects.done, f"saga commit without step {i}'s action")
            return
        votes = dict(decided.votes)
        check(len(votes) == self.setup.members, "commit decided without every vote")
        for i, vote in votes.items():
            effects = self.effects[i]
            one_phase = Op.COMMIT_ONE_PHASE in effects.done  # its commit was its yes
            check(vote in effects.votes or one_phase, f"member {i} never voted {vote}")

    def written(self) -> list[Record]:
        """Every record of the current incarnation's log: durable, then queued."""
        return self.durable + [r for a, _ in self.queued for r in a.records]

    def check_fold(self) -> None:
        machine = self.machine
        if machine is None or self.log_failed:
            return
        records = self.written()
        tx = machine.transaction
        if tx is None:
            check(not records, "records written, but the machine has no transaction")
            return
        check(fold(records) == tx, "fold(log) differs from the machine's transaction")

    # -- steps: each is one thing happening ----------------------------------------------

    RARE = frozenset({"crash", "append fails", "late answer", "resolve", "operator abort"})

    def check_end(self) -> None:
        """Atomicity over what participants saw, against the outcome the log says."""
        self.sync()
        outcome = self.durable_outcome()
        if not self.durable:
            # Unknown to the log: never committed by the protocol (a one-phase member may
            # have committed by itself; its commit was the decision).
            for e in self.effects:
                check(Op.COMMIT not in e.calls, "commit sent for a transaction the log lost")
            return
        tx = fold(self.durable)
        check(tx.ended, "the log does not show the transaction ended")
        for i, (e, m) in enumerate(zip(self.effects, tx.members, strict=True)):
            if m.state is MemberState.RESOLVED:
                continue
            if outcome is Outcome.COMMIT:
                check(not ({Op.ROLLBACK, Op.COMPENSATE} & set(e.done)), f"{i} undone")
                if Vote.YES in e.votes and m.state is not MemberState.READ_ONLY:
                    check(Op.COMMIT in e.done or Op.COMMIT_ONE_PHASE in e.done, f"{i} not done")
            else:
                check(Op.COMMIT not in e.calls, f"member {i} got commit in an aborted tx")
                if Op.ACTION in e.calls:  # it ran, or failed and may have done some work
                    check(Op.COMPENSATE in e.done, f"step {i} may have run, not compensated")
                asked = {Op.PREPARE, Op.COMMIT_ONE_PHASE} & set(e.calls)
                if asked and m.state is not MemberState.READ_ONLY:
                    check(Op.ROLLBACK in e.done, f"member {i} may hold work, never rolled back")


def _at(flags: tuple[bool, ...], i: int) -> bool:
    return flags[i] if i < len(flags) else False


def _has(records: list[Record], kind: type) -> bool:
    return any(isinstance(r, kind) for r in records)
