"""In-memory state of transactions the coordinator is driving right now."""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..abilities import NONE as NO_ABILITIES
from ..abilities import Abilities
from ..history import TransactionView
from ..records import LogRecord
from ..states import Mode, ParticipantState, RecordType

__all__ = ["LiveTransaction", "Member", "Phase"]


class Phase(enum.Enum):
    OPEN = "open"  # participants may join
    RUNNING = "running"  # commit or rollback in progress
    DONE = "done"  # every participant acknowledged, or left to recovery


@dataclasses.dataclass(slots=True)
class Member:
    """One participant (2PC) or step (saga) of a live transaction."""

    name: str
    order: int
    obj: Any  # Participant | SagaStep | None when it could not be rebuilt
    factory: str | None
    params: dict[str, Any]
    state: ParticipantState = ParticipantState.ENLISTED
    started: bool = False  # saga: the action may have run (compensate it on abort)
    prepared_logged: bool = False  # its PREPARED record is in the log
    attempts: int = 0
    last_error: str | None = None
    unavailable: str | None = None  # why obj is None
    abilities: Abilities = NO_ABILITIES  # read once from obj (dtc_wal.abilities)
    takes_data: bool = False  # saga: compensate(txid, data) rather than compensate(txid)


class LiveTransaction:
    """A transaction between ``begin_transaction`` and its last acknowledgement."""

    def __init__(self, txid: str, created_at: float, started_mono: float) -> None:
        self.txid = txid
        self.created_at = created_at
        self.started_mono = started_mono
        self.mode: Mode | None = None
        self.members: list[Member] = []
        self.phase = Phase.OPEN
        self.logged = False  # begun + enlisted records are in the log
        self.data: Mapping[str, Any] = {}  # saga: commit_transaction's data, for compensations
        self.lock = threading.Lock()

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def opening_records(self, now: float) -> list[LogRecord]:
        """BEGUN and ENLISTED records, written together before the first participant call.

        A saga's BEGUN record carries its data, so compensations get it after a crash."""
        data = (self.data or None) if self.mode is Mode.SAGA else None
        records = [LogRecord(RecordType.BEGUN, self.txid, self.created_at, data=data)]
        for m in self.members:
            records.append(
                LogRecord(
                    RecordType.ENLISTED,
                    self.txid,
                    now,
                    participant=m.name,
                    factory=m.factory,
                    params=m.params or None,
                    order=m.order,
                    mode=self.mode,
                )
            )
        return records

    def view(self) -> TransactionView:
        """What the log will say once the opening records are written."""
        view = TransactionView.begin(LogRecord(RecordType.BEGUN, self.txid, self.created_at))
        for record in self.opening_records(self.created_at)[1:]:
            view.apply(record)
        return view

    @classmethod
    def from_view(
        cls, view: TransactionView, members: Iterable[Member], started_mono: float
    ) -> LiveTransaction:
        """Rebuild a transaction found unfinished in the log (recovery)."""
        tx = cls(view.txid, view.created_at, started_mono)
        tx.mode = view.mode
        tx.data = dict(view.data or {})
        tx.members = sorted(members, key=lambda m: m.order)
        tx.phase = Phase.RUNNING
        tx.logged = True
        return tx
