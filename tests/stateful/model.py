"""The in-memory model the stateful machine keeps beside the real coordinator.

It predicts, from the participants' behaviours alone, what every call returns and what the
log must then say about every transaction -- the ``DatabaseComparison`` pattern of
hypothesis ``docs/stateful.rst``. It follows docs/protocol.md and docs/recovery.md, not the
code: where the two disagree the machine fails.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dtc_wal import Mode, ParticipantState, TxState

from .world import PREPARE_PHASES, World

#: ``max_retries`` of the coordinator under test: a call is tried 1 + MAX_RETRIES times.
MAX_RETRIES = 2


@dataclasses.dataclass
class MemberModel:
    name: str
    system: str
    recoverable: bool  # built from a registry factory, so recovery can rebuild it
    state: ParticipantState = ParticipantState.ENLISTED
    started: bool = False  # saga: its action may have run

    @property
    def done(self) -> bool:
        return self.state.done


@dataclasses.dataclass
class TxModel:
    txid: str
    started_at: float  # the coordinator clock's monotonic time at begin
    mode: Mode | None = None
    members: list[MemberModel] = dataclasses.field(default_factory=list)
    state: TxState | None = TxState.ACTIVE  # None: the log does not know it (vanished)
    open: bool = True  # owned by its caller: begun, not yet committed or rolled back
    data: Any = None  # data logged with the commit decision
    acked_commit: bool = False  # the caller was told the outcome is commit
    objects_lost: bool = False  # a crash since: non-recoverable members cannot be rebuilt

    def member(self, name: str) -> MemberModel | None:
        return next((m for m in self.members if m.name == name), None)

    def systems(self) -> set[str]:
        return {m.system for m in self.members}

    def pending(self) -> list[MemberModel]:
        return [m for m in self.members if not m.done]

    @property
    def unfinished(self) -> bool:
        """Decided (in the log), not yet completed."""
        return self.state in (TxState.DECIDED_COMMIT, TxState.DECIDED_ABORT)

    def reachable_member(self, member: MemberModel) -> bool:
        """Whether the coordinator holds (or can rebuild) a live object for ``member``."""
        return member.recoverable or not self.objects_lost


class Model:
    """Transactions as they must be, and the failure countdowns the systems must be at."""

    def __init__(self, world: World) -> None:
        self.world = world
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
        tx.open = False
        if tx.mode is Mode.SAGA:
            failed = False
            for m in tx.members:
                m.started = True
                if not self.call(m.system, "action", tx.txid):
                    failed = True
                    break
                m.state = ParticipantState.PREPARED
        else:
            votes = [self.call(m.system, "prepare", tx.txid) for m in tx.members]
            for m, yes in zip(tx.members, votes, strict=True):
                if yes:
                    m.state = ParticipantState.PREPARED
            failed = not all(votes)
        if failed:
            tx.state = TxState.DECIDED_ABORT
            self.deliver(tx)
            return "aborted"
        tx.state = TxState.DECIDED_COMMIT
        tx.data = data or None
        tx.acked_commit = True
        return "incomplete" if self.deliver(tx) else "ok"

    def rollback(self, tx: TxModel) -> None:
        """Predict ``rollback_transaction`` of an open transaction (also the zombie reaper)."""
        tx.open = False
        tx.state = TxState.DECIDED_ABORT
        self.deliver(tx)

    def deliver(self, tx: TxModel) -> list[MemberModel]:
        """Send the decided outcome to every member still pending; return those left."""
        commit = tx.state is TxState.DECIDED_COMMIT
        saga = tx.mode is Mode.SAGA
        for m in reversed(tx.members) if saga else tx.members:
            if m.done:
                continue
            if saga and commit:
                m.state = ParticipantState.COMMITTED  # the action was the commit
                continue
            if saga and m.state is not ParticipantState.PREPARED and not m.started:
                m.state = ParticipantState.SKIPPED
                continue
            if not tx.reachable_member(m):
                continue
            phase = "compensate" if saga else ("commit" if commit else "rollback")
            if self.call(m.system, phase, tx.txid):
                m.state = ParticipantState.COMMITTED if commit else ParticipantState.ROLLED_BACK
        pending = tx.pending()
        if not pending:
            tx.state = TxState.COMMITTED if commit else TxState.ABORTED
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
        if how == "rollback":  # of an open transaction: nothing of it was forced
            tx.state = None
            return
        if tx.acked_commit:  # DECIDED_COMMIT, with every yes-vote, was forced
            tx.state = TxState.DECIDED_COMMIT
            for m in tx.members:
                m.state = ParticipantState.PREPARED
            return
        # Aborted while committing: the opening records were forced, and for a saga the
        # PREPARED record of every step before the one that failed; the decision was lazy.
        tx.state = TxState.ACTIVE
        failed = max((i for i, m in enumerate(tx.members) if m.started), default=-1)
        for i, m in enumerate(tx.members):
            before_failed = tx.mode is Mode.SAGA and i < failed
            m.state = ParticipantState.PREPARED if before_failed else ParticipantState.ENLISTED

    def recover(self) -> set[str]:
        """A recovery pass: re-send the outcome of every unfinished transaction; presume
        abort for one that the log shows begun and undecided."""
        examined = set()
        for tx in self.txs.values():
            if tx.state is TxState.ACTIVE and not tx.open:
                tx.state = TxState.DECIDED_ABORT
            if tx.unfinished:
                examined.add(tx.txid)
                self.deliver(tx)
        return examined

    # -- queries --------------------------------------------------------------------------------

    def open_txids(self) -> list[str]:
        return [t.txid for t in self.txs.values() if t.open]

    def unfinished_txids(self) -> list[str]:
        """In begin order: txids are random, so sorting them would make draws flaky."""
        return [t.txid for t in self.txs.values() if t.unfinished]

    def pending_pairs(self) -> set[tuple[str, str]]:
        return {(t.txid, m.name) for t in self.txs.values() if t.unfinished for m in t.pending()}
