"""The state every part of a machine shares, and the two things they all do with it:
append records (folding them into the transaction) and finish a run.

Layers, each using only the ones below it: :mod:`.core` <- :mod:`.delivery` (rounds after
the decision, recovery, operators) <- :mod:`.machine` (joining, the forward phase, the
decision, the public ``handle``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from .commands import Append, Command, Decision, Finish
from .options import Options
from .records import Failed, Record
from .transaction import Transaction
from .vocabulary import MemberState, Mode, Op, Outcome, Vote

__all__ = ["Core", "Phase", "Then"]

Then = Callable[[float], list[Command]]
_NONE: list[Any] = []  # never appended to
_NO_ERRORS: dict[int, str] = {}
"""What a machine does once the sync it waits for is reported (given the event's now)."""


class Phase(enum.Enum):
    """Where a machine's run stands (``Machine.running`` is the public part of it)."""

    OPEN = "open"  # live, members may join
    OPENING = "opening"  # waiting for the opening record's sync
    FORWARD = "forward"  # prepare / action / one-phase calls in flight
    STEPPING = "stepping"  # saga: waiting for a StepDone sync
    DECIDING = "deciding"  # waiting for the commit decision's sync
    DELIVERING = "delivering"  # a round of phase two or compensations in flight
    RECORDING = "recording"  # waiting for an operator's record to sync
    IDLE = "idle"  # no run: seeded, or a run finished


class Core:
    """A machine's state. ``tx`` is what its records say; the rest is its own progress."""

    __slots__ = (
        "_abort",
        "_acks",
        "_appended",
        "_decision_sent",
        "_errors",
        "_failures",
        "_log_failed",
        "_may_have_run",
        "_next_id",
        "_outstanding",
        "_phase",
        "_queue",
        "_seed",
        "_targets",
        "_then",
        "_tx",
        "_votes",
        "_waiting",
        "mode",
        "options",
        "outcome",
        "txid",
    )

    def __init__(self, txid: str, options: Options) -> None:
        self.txid = txid
        self.options = options
        self.mode: Mode | None = None
        self._tx: Transaction | None = None
        self._seed: Transaction | None = None  # what a seeded machine started from
        self.outcome: Outcome | None = None  # the machine's: differs from tx's after a log error
        self._phase = Phase.OPEN
        self._outstanding: dict[int, Op] = {}  # member -> the op of its call in flight
        self._votes: list[Vote | None] = []  # 2PC votes before the decision, by position
        self._may_have_run = False  # a forward call was sent (a seeded machine: maybe)
        self._log_failed: str | None = None  # the log's error, once an append failed
        self._abort: tuple[str | None, int | None, str | None] = (None, None, None)
        self._decision_sent = False
        self._next_id = 0
        self._appended: list[tuple[int, tuple[Record, ...]]] = []
        self._waiting: int | None = None  # the durable append awaited
        self._then: Then | None = None  # what follows its sync
        # the current round (a round sets its own before use)
        self._targets: list[int] = _NONE
        self._queue: list[int] = _NONE
        self._acks: list[tuple[int, MemberState]] = _NONE
        self._failures: list[Failed] = _NONE
        self._errors: dict[int, str] = _NO_ERRORS

    @property
    def transaction(self) -> Transaction | None:
        """What this machine's records say (None before it wrote its opening record).

        It equals ``fold`` of the records it appended (after a seeded machine's own) -- until
        an append fails; then it is what the log holds without the failed ones.
        """
        return self._tx

    def pending(self) -> list[int]:
        return self._tx.pending() if self._tx is not None else []

    # -- the log ---------------------------------------------------------------------------

    def append(self, records: tuple[Record, ...], durable: bool) -> Append:
        """Fold ``records`` into the transaction and hand them to the log. A machine issues
        nothing that depends on a durable append before its ``Durable`` arrives."""
        tx = self._tx
        for record in records:
            if tx is None:
                tx = self._tx = Transaction.open(record)  # type: ignore[arg-type]
            else:
                tx.apply(record)
        self._next_id = n = self._next_id + 1
        self._appended.append((n, records))
        if durable:
            self._waiting = n
        return Append(n, records, durable)

    def wait(self, records: tuple[Record, ...], phase: Phase, then: Then) -> list[Command]:
        """Append ``records`` durably; ``then`` runs when their sync is reported."""
        self._phase = phase
        self._then = then
        return [self.append(records, True)]

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
        self._tx = tx
        return True

    # -- finishing ---------------------------------------------------------------------------

    def finish(self, pending: tuple[int, ...] = (), errors: tuple[str, ...] = ()) -> list[Command]:
        """End the run: Finish, with the Decision before it if not sent yet."""
        outcome = self.outcome
        assert outcome is not None
        if outcome is Outcome.COMMIT:
            finish = Finish(outcome, pending, errors)
        else:
            reason, member, error = self._abort
            if reason is None and self._tx is not None:
                reason = self._tx.reason
            finish = Finish(outcome, pending, errors, reason, member, error)
        self._phase = Phase.IDLE
        if self._decision_sent:
            return [finish]
        self._decision_sent = True
        return [Decision(outcome), finish]

    def finish_pending(self) -> list[Command]:
        """Finish with whatever the transaction shows pending and their last errors."""
        pending = tuple(self.pending())
        return self.finish(pending, tuple(self.last_error(i) for i in pending))

    def last_error(self, member: int) -> str:
        error = self._errors.get(member)
        if error is None and self._tx is not None:
            error = self._tx.members[member].error
        return error or ""
