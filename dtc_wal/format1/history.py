"""Fold log records into a transaction's state, refusing any record that breaks the order.

This is the single place the transition table lives (docs/protocol.md is its prose). The
log writer applies it before appending, recovery and ``dtc verify`` apply it when reading;
so a record the writer refused can never be found on disk, and one found there that breaks
the table means damage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from ..errors import InvalidTransitionError
from .records import LogRecord
from .vocabulary import Mode, Outcome, ParticipantState, RecordType, TxState

__all__ = ["ParticipantView", "TransactionView", "replay", "replay_until_refused"]

_ACK_STATE = {
    Outcome.COMMIT: ParticipantState.COMMITTED,
    Outcome.ROLLBACK: ParticipantState.ROLLED_BACK,
    Outcome.SKIP: ParticipantState.SKIPPED,
}


@dataclasses.dataclass(slots=True)
class ParticipantView:
    name: str
    order: int
    factory: str | None
    params: dict[str, Any]
    state: ParticipantState = ParticipantState.ENLISTED
    attempts: int = 0
    last_error: str | None = None
    resolution: Outcome | None = None
    resolved_by: str | None = None

    @property
    def recoverable(self) -> bool:
        """True when recovery can rebuild it from the registry."""
        return self.factory is not None


@dataclasses.dataclass(slots=True)
class TransactionView:
    """What the log says about one transaction, built by :meth:`apply` one record at a time."""

    txid: str
    created_at: float
    updated_at: float
    mode: Mode | None = None
    state: TxState = TxState.ACTIVE
    participants: dict[str, ParticipantView] = dataclasses.field(default_factory=dict)
    decided_at: float | None = None
    reason: str | None = None
    decided_by: str | None = None
    data: Any = None  # saga: the data of the BEGUN record (what its compensations get)
    lsns: list[int] = dataclasses.field(default_factory=list)

    @classmethod
    def begin(cls, record: LogRecord, lsn: int | None = None) -> TransactionView:
        if record.type is not RecordType.BEGUN:
            raise InvalidTransitionError(
                f"transaction {record.txid}: first record is {record.type.name}, expected BEGUN"
            )
        view = cls(txid=record.txid, created_at=record.at, updated_at=record.at)
        view.mode = record.mode
        view.data = record.data
        if lsn is not None:
            view.lsns.append(lsn)
        return view

    def copy(self) -> TransactionView:
        """A deep copy (participants and LSN list too), cheaper than ``dataclasses.replace``."""
        new = object.__new__(TransactionView)
        for name in _VIEW_SLOTS:
            setattr(new, name, getattr(self, name))
        participants = {}
        for key, part in self.participants.items():
            clone = object.__new__(ParticipantView)
            for name in _PART_SLOTS:
                setattr(clone, name, getattr(part, name))
            participants[key] = clone
        new.participants = participants
        new.lsns = list(self.lsns)
        return new

    # -- queries ---------------------------------------------------------------------

    def ordered(self) -> list[ParticipantView]:
        return sorted(self.participants.values(), key=lambda p: p.order)

    def pending(self) -> list[ParticipantView]:
        """Participants that still need their outcome delivered (decided transactions)."""
        return [p for p in self.ordered() if not p.state.done]

    @property
    def outcome(self) -> Outcome | None:
        if self.state in (TxState.DECIDED_COMMIT, TxState.COMMITTED):
            return Outcome.COMMIT
        if self.state in (TxState.DECIDED_ABORT, TxState.ABORTED):
            return Outcome.ROLLBACK
        return None

    def summary(self) -> dict[str, Any]:
        """The compact form stored in the txid index (docs/log-format.md)."""
        return {
            "s": self.state.value,
            "m": self.mode.value if self.mode else None,
            "c": self.created_at,
            "u": self.updated_at,
            "l": list(self.lsns),
            "p": {p.name: p.state.value for p in self.ordered()},
        }

    # -- the transition table ----------------------------------------------------------

    def apply(self, record: LogRecord, lsn: int | None = None) -> None:
        """Advance by one record, or raise :class:`InvalidTransitionError` and change nothing."""
        if record.txid != self.txid:
            raise InvalidTransitionError(
                f"record for {record.txid} applied to transaction {self.txid}"
            )
        handler = _HANDLERS.get(record.type)
        if handler is None:
            self._refuse(record, "a transaction has exactly one BEGUN record")
        assert handler is not None
        if self.state.finished:
            self._refuse(record, f"the transaction is already {self.state.value}")
        handler(self, record)
        self.updated_at = max(self.updated_at, record.at)
        if lsn is not None:
            self.lsns.append(lsn)

    def _refuse(self, record: LogRecord, why: str) -> None:
        who = f" for participant {record.participant!r}" if record.participant else ""
        raise InvalidTransitionError(
            f"transaction {self.txid}: {record.type.name}{who} refused in state "
            f"{self.state.value}: {why}"
        )

    def _participant(self, record: LogRecord) -> ParticipantView:
        name = record.participant
        if name is None or name not in self.participants:
            self._refuse(record, "no such participant is enlisted")
        return self.participants[name]  # type: ignore[index]

    def _on_enlisted(self, record: LogRecord) -> None:
        if self.state is not TxState.ACTIVE:
            self._refuse(record, "participants can join only before the decision")
        if record.participant is None or record.participant in self.participants:
            self._refuse(record, "participant names must be present and unique")
        if record.mode is None or (self.mode is not None and record.mode is not self.mode):
            self._refuse(record, f"mode {record.mode} does not match transaction mode")
        self.mode = record.mode
        assert record.participant is not None
        self.participants[record.participant] = ParticipantView(
            name=record.participant,
            order=record.order if record.order is not None else len(self.participants),
            factory=record.factory,
            params=dict(record.params or {}),
        )

    def _on_prepared(self, record: LogRecord) -> None:
        part = self._participant(record)
        if self.state is not TxState.ACTIVE or part.state is not ParticipantState.ENLISTED:
            self._refuse(record, "a participant prepares once, before the decision")
        if self.mode is Mode.SAGA:
            earlier = [p for p in self.ordered() if p.order < part.order]
            if any(p.state is not ParticipantState.PREPARED for p in earlier):
                self._refuse(record, "saga steps complete in registration order")
            if record.outcome is not None:
                self._refuse(record, "a saga step cannot vote read-only")
        if record.outcome not in (None, Outcome.READ_ONLY):
            self._refuse(record, f"a vote is yes or read-only, not {record.outcome}")
        if record.outcome is Outcome.READ_ONLY:
            part.state = ParticipantState.READ_ONLY
        else:
            part.state = ParticipantState.PREPARED

    def _on_decided_commit(self, record: LogRecord) -> None:
        if self.state is not TxState.ACTIVE:
            self._refuse(record, "the outcome is decided once")
        unprepared = [p.name for p in self.ordered() if p.state not in _VOTED]
        if unprepared:
            self._refuse(record, f"not prepared: {', '.join(unprepared)}")
        self.state = TxState.DECIDED_COMMIT
        self._decided(record)

    def _on_decided_abort(self, record: LogRecord) -> None:
        if self.state is not TxState.ACTIVE:
            self._refuse(record, "the outcome is decided once")
        self.state = TxState.DECIDED_ABORT
        self._decided(record)

    def _decided(self, record: LogRecord) -> None:
        self.decided_at = record.at
        self.reason = record.reason
        self.decided_by = record.actor

    def _on_acknowledged(self, record: LogRecord) -> None:
        part = self._participant(record)
        if not self.state.decided:
            self._refuse(record, "acknowledgements follow the decision")
        if part.state.done:
            self._refuse(record, "the participant already acknowledged")
        allowed = {
            TxState.DECIDED_COMMIT: (Outcome.COMMIT,),
            TxState.DECIDED_ABORT: (Outcome.ROLLBACK, Outcome.SKIP),
        }[self.state]
        if record.outcome not in allowed:
            self._refuse(record, f"outcome {record.outcome} contradicts the decision")
        if record.outcome is Outcome.SKIP and (
            self.mode is not Mode.SAGA or part.state is not ParticipantState.ENLISTED
        ):
            self._refuse(record, "only a saga step that never ran may be skipped")
        assert record.outcome is not None
        part.state = _ACK_STATE[record.outcome]

    def _on_failed(self, record: LogRecord) -> None:
        part = self._participant(record)
        part.attempts += record.attempts or 1
        part.last_error = record.error

    def _on_resolved(self, record: LogRecord) -> None:
        part = self._participant(record)
        if not self.state.decided:
            self._refuse(record, "decide the transaction before resolving participants")
        if part.state.done:
            self._refuse(record, "the participant already acknowledged")
        if record.outcome not in (Outcome.COMMIT, Outcome.ROLLBACK):
            self._refuse(record, "a resolution says commit or rollback")
        part.state = ParticipantState.RESOLVED
        part.resolution = record.outcome
        part.resolved_by = record.actor
        if record.reason:
            part.last_error = record.reason

    def _on_completed(self, record: LogRecord) -> None:
        if not self.state.decided:
            self._refuse(record, "a transaction completes after its decision")
        pending = [p.name for p in self.pending()]
        if pending:
            self._refuse(record, f"still pending: {', '.join(pending)}")
        self.state = TxState.COMMITTED if self.state is TxState.DECIDED_COMMIT else TxState.ABORTED


_VOTED = (ParticipantState.PREPARED, ParticipantState.READ_ONLY)
_VIEW_SLOTS = tuple(f.name for f in dataclasses.fields(TransactionView))
_PART_SLOTS = tuple(f.name for f in dataclasses.fields(ParticipantView))

_HANDLERS = {
    RecordType.ENLISTED: TransactionView._on_enlisted,
    RecordType.PREPARED: TransactionView._on_prepared,
    RecordType.DECIDED_COMMIT: TransactionView._on_decided_commit,
    RecordType.DECIDED_ABORT: TransactionView._on_decided_abort,
    RecordType.ACKNOWLEDGED: TransactionView._on_acknowledged,
    RecordType.FAILED: TransactionView._on_failed,
    RecordType.RESOLVED: TransactionView._on_resolved,
    RecordType.COMPLETED: TransactionView._on_completed,
}


def replay(records: Iterable[tuple[int, LogRecord]]) -> TransactionView:
    """Build one transaction's view from its ``(lsn, record)`` pairs, in log order."""
    view: TransactionView | None = None
    for lsn, record in records:
        if view is None:
            view = TransactionView.begin(record, lsn)
        else:
            view.apply(record, lsn)
    if view is None:
        raise InvalidTransitionError("no records to replay")
    return view


def replay_until_refused(
    records: Iterable[tuple[int, LogRecord]],
) -> tuple[TransactionView | None, int | None, InvalidTransitionError | None]:
    """The view from as many records as the transition table accepts, and the LSN and
    error of the first record it refused (None, None when it took them all)."""
    view: TransactionView | None = None
    for lsn, record in records:
        try:
            if view is None:
                view = TransactionView.begin(record, lsn)
            else:
                view.apply(record, lsn)
        except InvalidTransitionError as exc:
            return view, lsn, exc
    return view, None, None
