"""One state model per transaction, the same live and after a restart.

:meth:`Transaction.apply` is the transition table of format 2 (docs/protocol.md is its
prose): it raises :class:`~.errors.OutOfOrderError` naming what is out of order and changes
nothing, or applies the record whole. :func:`fold` builds a transaction from its records --
recovery folds what the log holds, ``dtc verify`` folds to check it, and a running machine
folds each record it appends, so its :attr:`~.machine.Machine.transaction` always equals
``fold`` of what it wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from .errors import OutOfOrderError
from .records import Acked, Decided, Ended, Failed, Opened, Record, Resolved, StepDone
from .vocabulary import SETTLED, MemberState, Mode, Outcome, TxState, Vote

__all__ = ["Member", "Transaction", "fold"]

_VOTE_STATE = {Vote.YES: MemberState.PREPARED, Vote.READ_ONLY: MemberState.READ_ONLY}
# Which acknowledged states each outcome allows, and from which member states (per mode).
_ACKS: dict[tuple[Mode, Outcome], dict[MemberState, frozenset[MemberState]]] = {
    (Mode.TWO_PHASE, Outcome.COMMIT): {
        MemberState.COMMITTED: frozenset({MemberState.PREPARED}),
    },
    (Mode.TWO_PHASE, Outcome.ABORT): {
        MemberState.ROLLED_BACK: frozenset({MemberState.ENLISTED, MemberState.PREPARED}),
    },
    (Mode.SAGA, Outcome.COMMIT): {},  # the commit decision settles every step
    (Mode.SAGA, Outcome.ABORT): {
        MemberState.ROLLED_BACK: frozenset({MemberState.ENLISTED, MemberState.STEP_DONE}),
        MemberState.SKIPPED: frozenset({MemberState.ENLISTED}),
    },
}


@dataclasses.dataclass(slots=True)
class Member:
    """One member (2PC participant or saga step) of a transaction, at its position."""

    name: str
    factory: str | None
    params: Mapping[str, Any] | None
    state: MemberState = MemberState.ENLISTED
    attempts: int = 0
    """Failed attempts recorded by :class:`~.records.Failed` records."""
    error: str | None = None
    """The last recorded error."""
    resolution: Resolved | None = None
    """The operator's record, when one settled this member."""

    @property
    def recoverable(self) -> bool:
        """True when recovery can rebuild it from a registry factory."""
        return self.factory is not None


@dataclasses.dataclass(slots=True)
class Transaction:
    """What the records of one transaction say, built one record at a time."""

    txid: str
    mode: Mode
    opened_at: float
    members: list[Member]
    data: Mapping[str, Any] | None = None
    updated_at: float = 0.0
    outcome: Outcome | None = None
    """None: not decided (presumed abort, should it stay so)."""
    decided_at: float | None = None
    reason: str | None = None
    actor: str | None = None
    ended: bool = False

    @classmethod
    def open(cls, record: Opened) -> Transaction:
        """The transaction its opening record starts (the first step of :func:`fold`)."""
        if not isinstance(record, Opened):
            raise OutOfOrderError(
                f"transaction {record.txid}: its first record is {type(record).__name__}, "
                "not Opened"
            )
        names = [m.name for m in record.members]
        if len(set(names)) != len(names) or not all(names):
            raise OutOfOrderError(
                f"transaction {record.txid}: Opened refused: member names must be non-empty "
                f"and unique, got {names}"
            )
        members = [Member(m.name, m.factory, m.params) for m in record.members]
        return cls(record.txid, record.mode, record.at, members, record.data, record.at)

    def copy(self) -> Transaction:
        """An independent copy (the members too); records and params are shared."""
        members = [dataclasses.replace(m) for m in self.members]
        return dataclasses.replace(self, members=members)

    # -- queries ---------------------------------------------------------------------------

    @property
    def state(self) -> TxState:
        if self.outcome is None:
            return TxState.ACTIVE
        if self.outcome is Outcome.COMMIT:
            return TxState.COMMITTED if self.ended else TxState.DECIDED_COMMIT
        return TxState.ABORTED if self.ended else TxState.DECIDED_ABORT

    def pending(self) -> list[int]:
        """Positions of the members not settled yet, in order."""
        return [i for i, m in enumerate(self.members) if m.state not in SETTLED]

    # -- the transition table ----------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """Advance by one record, or raise :class:`OutOfOrderError` and change nothing."""
        if record.txid != self.txid:
            raise OutOfOrderError(f"a record of {record.txid} applied to transaction {self.txid}")
        if self.ended:
            self._refuse(record, "the transaction has ended")
        handler = _HANDLERS.get(type(record))
        if handler is None:
            self._refuse(record, "a transaction opens once")
        handler(self, record)
        if record.at > self.updated_at:
            self.updated_at = record.at

    def _refuse(self, record: Record, why: str) -> NoReturn:
        raise OutOfOrderError(
            f"transaction {self.txid}: {type(record).__name__} refused in state "
            f"{self.state.value}: {why}"
        )

    def _member(self, record: Record, index: int) -> Member:
        if not 0 <= index < len(self.members):
            self._refuse(record, f"no member at position {index}")
        return self.members[index]

    def _on_step_done(self, record: StepDone) -> None:
        if self.outcome is not None:
            self._refuse(record, "steps complete before the decision")
        if self.mode is not Mode.SAGA:
            self._refuse(record, "only saga steps complete one by one")
        member = self._member(record, record.index)
        if member.state is not MemberState.ENLISTED:
            self._refuse(record, f"step {record.index} is already done")
        if any(m.state is not MemberState.STEP_DONE for m in self.members[: record.index]):
            self._refuse(record, "saga steps complete in order")
        member.state = MemberState.STEP_DONE

    def _on_decided(self, record: Decided) -> None:
        if self.outcome is not None:
            self._refuse(record, "the outcome is decided once")
        members = self.members
        n = len(members)
        seen = {index for index, _ in record.votes}
        if len(seen) != len(record.votes) or not seen <= set(range(n)):
            self._refuse(record, "one vote per member, each at a member's position")
        if self.mode is Mode.SAGA:
            if seen:
                self._refuse(record, "saga steps do not vote")
            if record.outcome is Outcome.COMMIT:
                undone = [m.name for m in members[:-1] if m.state is not MemberState.STEP_DONE]
                if undone:
                    self._refuse(record, f"steps not done: {', '.join(undone)}")
                for m in members:
                    m.state = MemberState.COMMITTED
        else:
            if record.outcome is Outcome.COMMIT and len(seen) != n:
                missing = [m.name for i, m in enumerate(members) if i not in seen]
                self._refuse(record, f"commit needs every vote; none from {', '.join(missing)}")
            for index, vote in record.votes:
                members[index].state = _VOTE_STATE[vote]
        self.outcome = record.outcome
        self.decided_at = record.at
        self.reason = record.reason
        self.actor = record.actor

    def _check_acks(self, record: Acked | Ended) -> None:
        outcome = self.outcome
        if outcome is None:
            self._refuse(record, "acknowledgements follow the decision")
        allowed = _ACKS[self.mode, outcome]
        members = self.members
        seen = {index for index, _ in record.acks}
        if len(seen) != len(record.acks) or not seen <= set(range(len(members))):
            self._refuse(record, "one acknowledgement per member, each at a member's position")
        for index, state in record.acks:
            sources = allowed.get(state)
            if sources is None:
                self._refuse(record, f"{state.value} contradicts outcome {outcome.value}")
            member = members[index]
            if member.state not in sources:
                self._refuse(record, f"{member.name} cannot be {state.value} once {member.state}")

    def _on_acked(self, record: Acked) -> None:
        self._check_acks(record)
        members = self.members
        for index, state in record.acks:
            members[index].state = state

    def _on_ended(self, record: Ended) -> None:
        self._check_acks(record)
        members = self.members
        if len(record.acks) != len(members):  # members not acknowledged here: settled?
            acked = {index for index, _ in record.acks}
            left = [
                m.name for i, m in enumerate(members) if i not in acked and m.state not in SETTLED
            ]
            if left:
                self._refuse(record, f"still pending: {', '.join(left)}")
        for index, state in record.acks:
            members[index].state = state
        self.ended = True

    def _on_failed(self, record: Failed) -> None:
        member = self._member(record, record.member)
        if member.state in SETTLED:
            self._refuse(record, f"{member.name} is already {member.state.value}")
        if record.attempts < 0:
            self._refuse(record, "attempts cannot be negative")
        member.attempts += record.attempts
        member.error = record.error

    def _on_resolved(self, record: Resolved) -> None:
        member = self._member(record, record.member)
        if self.outcome is None:
            self._refuse(record, "decide the transaction before resolving members")
        if member.state in SETTLED:
            self._refuse(record, f"{member.name} is already {member.state.value}")
        member.state = MemberState.RESOLVED
        member.resolution = record


_HANDLERS: dict[type, Callable[[Transaction, Any], None]] = {
    StepDone: Transaction._on_step_done,
    Decided: Transaction._on_decided,
    Acked: Transaction._on_acked,
    Ended: Transaction._on_ended,
    Failed: Transaction._on_failed,
    Resolved: Transaction._on_resolved,
}


def fold(records: Iterable[Record]) -> Transaction:
    """The transaction that ``records`` (one transaction's, in log order) describe.

    Raises :class:`OutOfOrderError` when there are none, the first is not :class:`Opened`,
    or any breaks the table. A result whose ``outcome`` is None is an undecided transaction:
    by presumed abort, its outcome is abort.
    """
    it = iter(records)
    first = next(it, None)
    if first is None:
        raise OutOfOrderError("no records to fold")
    tx = Transaction.open(first)  # type: ignore[arg-type]
    for record in it:
        tx.apply(record)
    return tx
