"""The in-memory model the stateful machine keeps beside the real coordinator.

It predicts, from the participants' behaviours alone, what every call returns and what the
log must then say about every transaction -- the ``DatabaseComparison`` pattern of
hypothesis ``docs/stateful.rst``. It follows docs/protocol.md, docs/recovery.md and
docs/architecture.md, not the code: where the two disagree the machine fails.

The coordinator reports states in the protocol's enums; :data:`WORDS` names the ones the
model predicts with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dtc_wal import protocol

from .world import PREPARE_PHASES, World

#: ``max_retries`` of the coordinator under test: a call is tried 1 + MAX_RETRIES times.
MAX_RETRIES = 2

#: Member states after which nothing more is sent, and transaction states that are ended
#: (the enums are string enums).
SETTLED = frozenset({"committed", "rolled-back", "skipped", "resolved", "read-only"})
ENDED = frozenset({"committed", "aborted"})


def settled(state: Any) -> bool:
    return state in SETTLED


def ended(state: Any) -> bool:
    return state in ENDED


@dataclasses.dataclass(frozen=True)
class Words:
    """The enums the coordinator reports its states in."""

    tx: Any  # the TxState enum
    member: Any  # MemberState
    mode: Any
    commit: Any  # the outcome a commit decision reports
    abort: Any  # ... and an abort decision
    step_done: Any  # a saga step whose action ran


WORDS = Words(
    protocol.TxState,
    protocol.MemberState,
    protocol.Mode,
    protocol.Outcome.COMMIT,
    protocol.Outcome.ABORT,
    protocol.MemberState.STEP_DONE,
)


@dataclasses.dataclass
class MemberModel:
    name: str
    system: str
    recoverable: bool  # built from a registry factory, so recovery can rebuild it
    state: Any  # a MemberState, ENLISTED when it joins
    started: bool = False  # saga: its action may have run

    @property
    def done(self) -> bool:
        return settled(self.state)


@dataclasses.dataclass
class TxModel:
    txid: str
    started_at: float  # the coordinator clock's monotonic time at begin
    words: Words
    mode: Any = None  # a Mode once a member fixed it
    members: list[MemberModel] = dataclasses.field(default_factory=list)
    state: Any = None  # a TxState; None: the log does not know it (vanished)
    open: bool = True  # owned by its caller: begun, not yet committed or rolled back
    data: Any = None  # data logged with the commit decision
    acked_commit: bool = False  # the caller was told the outcome is commit
    objects_lost: bool = False  # a crash since: non-recoverable members cannot be rebuilt

    def __post_init__(self) -> None:
        self.state = self.words.tx.ACTIVE

    def join(self, name: str, system: str, recoverable: bool, saga: bool) -> None:
        self.mode = self.words.mode.SAGA if saga else self.words.mode.TWO_PHASE
        self.members.append(MemberModel(name, system, recoverable, self.words.member.ENLISTED))

    @property
    def logged_mode(self) -> Any:
        """The mode the coordinator reports: ``Opened`` names one even when no member
        joined (2PC)."""
        if self.mode is None:
            return self.words.mode.TWO_PHASE
        return self.mode

    @property
    def saga(self) -> bool:
        return self.mode is self.words.mode.SAGA

    def shows(self, m: MemberModel, logged: Any) -> bool:
        """Whether the coordinator may report ``logged`` for member ``m``. The votes are
        written in the ``Decided`` record and abort is decided at the first refusal, so a
        yes vote that came after it is not in the log: a 2PC member of an aborting
        transaction that the model has voted yes may show enlisted until its rollback."""
        if logged is m.state:
            return True
        return (
            not self.saga
            and self.state is self.words.tx.DECIDED_ABORT
            and m.state is self.words.member.PREPARED
            and logged is self.words.member.ENLISTED
        )

    def member(self, name: str) -> MemberModel | None:
        return next((m for m in self.members if m.name == name), None)

    def systems(self) -> set[str]:
        return {m.system for m in self.members}

    def pending(self) -> list[MemberModel]:
        return [m for m in self.members if not m.done]

    @property
    def unfinished(self) -> bool:
        """Decided (in the log), not yet completed."""
        return self.state in (self.words.tx.DECIDED_COMMIT, self.words.tx.DECIDED_ABORT)

    def reachable_member(self, member: MemberModel) -> bool:
        """Whether the coordinator holds (or can rebuild) a live object for ``member``."""
        return member.recoverable or not self.objects_lost


class Model:
    """Transactions as they must be, and the failure countdowns the systems must be at."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.w = WORDS
        self.txs: dict[str, TxModel] = {}
        # (system, phase, txid) -> failures still to come; absent = the behaviour's n.
        self.left: dict[tuple[str, str, str], int] = {}

    # -- participant calls --------------------------------------------------------------------

    def remaining(self, system: str, phase: str, txid: str) -> int:
        key = (system, phase, txid)
        if key not in self.left:
            self.left[key] = self.world.systems[system].behaviour.initial_failures(phase)
        return self.left[key]

    def call(self, system: str, phase: str, txid: str) -> bool:
        """Whether one coordinator call (with its retries) to ``system`` succeeds."""
        target = self.world.systems[system]
        if target.unreachable:
            return False  # every attempt raises ConnectionError (or the factory does)
        if phase in PREPARE_PHASES and target.behaviour.kind in ("vote-no", "hang"):
            return False
        left = self.remaining(system, phase, txid)
        if left <= MAX_RETRIES:
            self.left[(system, phase, txid)] = 0
            return True
        self.left[(system, phase, txid)] = left - (MAX_RETRIES + 1)
        return False

    def countdown_mismatches(self) -> list[str]:
        """Where a system saw a different number of calls than the model predicted."""
        out = []
        for (system, phase, txid), left in self.left.items():
            actual = self.world.systems[system].remaining(phase, txid)
            if actual != left:
                out.append(
                    f"{system} {phase} {txid}: {actual} failure(s) left, model expects {left}"
                )
        return out

    # -- the protocol ---------------------------------------------------------------------------

    def commit(self, tx: TxModel, data: dict[str, Any]) -> str:
        """Predict ``commit_transaction``: "ok", "incomplete" or "aborted"."""
        w = self.w
        tx.open = False
        if tx.saga:
            failed = False
            for m in tx.members:
                m.started = True
                if not self.call(m.system, "action", tx.txid):
                    failed = True
                    break
                m.state = w.step_done
        else:
            votes = [self.call(m.system, "prepare", tx.txid) for m in tx.members]
            for m, yes in zip(tx.members, votes, strict=True):
                if yes:
                    m.state = w.member.PREPARED
            failed = not all(votes)
        if failed:
            tx.state = w.tx.DECIDED_ABORT
            self.deliver(tx)
            return "aborted"
        tx.state = w.tx.DECIDED_COMMIT
        tx.data = data or None
        tx.acked_commit = True
        return "incomplete" if self.deliver(tx) else "ok"

    def rollback(self, tx: TxModel) -> None:
        """Predict ``rollback_transaction`` of an open transaction (also the zombie reaper)."""
        tx.open = False
        tx.state = self.w.tx.DECIDED_ABORT
        self.deliver(tx)

    def deliver(self, tx: TxModel) -> list[MemberModel]:
        """Send the decided outcome to every member still pending; return those left."""
        w = self.w
        commit = tx.state is w.tx.DECIDED_COMMIT
        saga = tx.saga
        for m in reversed(tx.members) if saga else tx.members:
            if m.done:
                continue
            if saga and commit:
                m.state = w.member.COMMITTED  # the action was the commit
                continue
            if saga and m.state is not w.step_done and not m.started:
                m.state = w.member.SKIPPED
                continue
            if not tx.reachable_member(m):
                continue
            phase = "compensate" if saga else ("commit" if commit else "rollback")
            if self.call(m.system, phase, tx.txid):
                m.state = w.member.COMMITTED if commit else w.member.ROLLED_BACK
        pending = tx.pending()
        if not pending:
            tx.state = w.tx.COMMITTED if commit else w.tx.ABORTED
        return pending

    def crash(self) -> None:
        """The coordinator died: open transactions vanish, live objects are gone."""
        for tx in self.txs.values():
            if tx.open:
                tx.open = False
                tx.state = None
            tx.objects_lost = True

    def lose_lazy_records(self, tx: TxModel, how: str) -> None:
        """What the log holds of ``tx`` when a crash lost every lazy record of its last
        call (``commit`` or ``rollback``): only the forced ones are left."""
        w = self.w
        if how == "rollback":  # of an open transaction: nothing of it was forced
            tx.state = None
            return
        if tx.acked_commit:
            if tx.saga or not tx.members:
                # A saga's (and an empty transaction's) Decided commit is forced together
                # with its Ended: the transaction is finished, nothing was lost.
                return
            # DECIDED_COMMIT, with every yes-vote, was forced.
            tx.state = w.tx.DECIDED_COMMIT
            for m in tx.members:
                m.state = w.member.PREPARED
            return
        # Aborted while committing: the opening records were forced, and for a saga the
        # step-done record of every step before the one that failed; the decision was lazy
        # (the votes travel in it, so every 2PC member is back to enlisted).
        tx.state = w.tx.ACTIVE
        failed = max((i for i, m in enumerate(tx.members) if m.started), default=-1)
        for i, m in enumerate(tx.members):
            before_failed = tx.saga and i < failed
            m.state = w.step_done if before_failed else w.member.ENLISTED

    def recover(self) -> set[str]:
        """A recovery pass: re-send the outcome of every unfinished transaction; presume
        abort for one that the log shows begun and undecided."""
        examined = set()
        for tx in self.txs.values():
            if tx.state is self.w.tx.ACTIVE and not tx.open:
                tx.state = self.w.tx.DECIDED_ABORT
            if tx.unfinished:
                examined.add(tx.txid)
                self.deliver(tx)
        return examined

    # -- queries --------------------------------------------------------------------------------

    def begin(self, txid: str, started_at: float) -> TxModel:
        """A transaction just begun (registered in :attr:`txs`)."""
        tx = self.txs[txid] = TxModel(txid, started_at, self.w)
        return tx

    def open_txids(self) -> list[str]:
        return [t.txid for t in self.txs.values() if t.open]

    def unfinished_txids(self) -> list[str]:
        """In begin order: txids are random, so sorting them would make draws flaky."""
        return [t.txid for t in self.txs.values() if t.unfinished]

    def pending_pairs(self) -> set[tuple[str, str]]:
        return {(t.txid, m.name) for t in self.txs.values() if t.unfinished for m in t.pending()}
