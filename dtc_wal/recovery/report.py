"""What a recovery pass did, and what it could not finish (in doubt)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["InDoubt", "RecoveryReport", "TransactionAction"]

DAMAGED = "damaged"


@dataclasses.dataclass(frozen=True, slots=True)
class InDoubt:
    """A participant whose outcome could not be delivered; its transaction stays unfinished.

    A transaction whose records cannot be read back is one entry with ``damaged`` True,
    ``participant`` ``"*"`` (all of them), ``state`` ``"damaged"``, ``outcome`` None (the log
    cannot say), ``error`` the damage and ``lsn`` where it is (None: its index entry).

    ``awaiting_recovery`` is True for a participant that recovery has not tried yet since
    the transaction was left unfinished (no ``failed`` record, and it can be rebuilt): it is
    not in doubt yet, only waiting for the next pass (docs/recovery.md).
    """

    txid: str
    participant: str
    outcome: str | None
    """What it must be told ("commit" or "rollback"), or None when undecided."""
    state: str
    error: str | None
    attempts: int
    damaged: bool = False
    lsn: int | None = None
    awaiting_recovery: bool = False

    @property
    def status(self) -> str:
        """``"awaiting recovery"`` or ``"in doubt"``."""
        return "awaiting recovery" if self.awaiting_recovery else "in doubt"

    def __str__(self) -> str:
        if self.damaged:
            return (
                f"{self.txid}: damaged in the log, left alone by recovery (settle it by hand, "
                f"then `dtc repair`): {self.error}"
            )
        needs = f"{self.txid} {self.participant}: needs {self.outcome or 'a decision'}"
        if self.awaiting_recovery:
            return f"{needs}, not tried yet (awaiting recovery)"
        return f"{needs}, {self.attempts} attempt(s), last error: {self.error or 'none'}"


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionAction:
    """One transaction recovery examined, what it did (or would do), and how it ended."""

    txid: str
    mode: str | None
    state_before: str
    action: str
    outcome: str | None
    finished: bool
    pending: tuple[str, ...] = ()


@dataclasses.dataclass(slots=True)
class RecoveryReport:
    """The result of :func:`dtc_wal.recovery.recover` or a coordinator's recovery pass."""

    dry_run: bool = False
    transactions: list[TransactionAction] = dataclasses.field(default_factory=list)
    in_doubt: list[InDoubt] = dataclasses.field(default_factory=list)
    orphans: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    """``(resource, txid, action)`` for prepared branches found by PreparedResources."""
    stale_readers_cleared: int = 0

    @property
    def examined(self) -> int:
        return len(self.transactions)

    @property
    def finished(self) -> list[str]:
        return [t.txid for t in self.transactions if t.finished]

    @property
    def clean(self) -> bool:
        """True when nothing is left in doubt."""
        return not self.in_doubt

    @property
    def damaged(self) -> list[str]:
        """The transactions left alone because their records cannot be read back."""
        return [d.txid for d in self.in_doubt if d.damaged]

    def merge(self, other: RecoveryReport) -> None:
        self.transactions.extend(other.transactions)
        self.in_doubt.extend(other.in_doubt)
        self.orphans.extend(other.orphans)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "examined": self.examined,
            "finished": self.finished,
            "transactions": [dataclasses.asdict(t) for t in self.transactions],
            "in_doubt": [dataclasses.asdict(d) for d in self.in_doubt],
            "orphans": [{"resource": r, "txid": t, "action": a} for r, t, a in self.orphans],
            "stale_readers_cleared": self.stale_readers_cleared,
        }

    def summary(self) -> str:
        verb = "would finish" if self.dry_run else "finished"
        damaged = len(self.damaged)
        text = (
            f"examined {self.examined} unfinished transaction(s), {verb} "
            f"{len(self.finished)}, {len(self.in_doubt) - damaged} participant(s) in doubt"
        )
        if damaged:
            text += f", {damaged} damaged transaction(s) in doubt and left alone"
        if self.orphans:
            text += f", {len(self.orphans)} orphan prepared branch(es) resolved"
        return text
