"""Folded transactions in the words of :mod:`dtc_wal.recovery.report`: the
:class:`~dtc_wal.recovery.report.RecoveryReport` entries a recovery pass (or its dry run)
and the in-doubt listing give for a folded :class:`~dtc_wal.protocol.Transaction`.

The report keeps the vocabulary of dtc-wal 0.1 users: an outcome is ``"commit"``
or ``"rollback"`` (the protocol's abort), an action ``"presumed abort: roll back"`` or
``"re-send commit"`` / ``"re-send rollback"``; states are the protocol's member states
(``"prepared"``, ``"step-done"``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import RecordDamagedError
from ..protocol import (
    Finish,
    MemberState,
    Mode,
    Opened,
    Outcome,
    OutOfOrderError,
    Record,
    Transaction,
    fold,
)
from ..recovery.report import DAMAGED, InDoubt, TransactionAction

__all__ = [
    "damaged",
    "driven",
    "not_folding",
    "pending_of",
    "planned",
    "word",
]

PRESUMED = "presumed abort: roll back"


NOT_REBUILDABLE = (
    "enlisted as an object, not through a registry factory: recovery cannot rebuild it; "
    "settle it by hand and record that with `dtc resolve`"
)


def word(outcome: Outcome | None) -> str | None:
    """The report's word for an outcome: ``"commit"``, ``"rollback"`` (None: undecided)."""
    if outcome is None:
        return None
    return "commit" if outcome is Outcome.COMMIT else "rollback"


def _action(tx: Transaction) -> tuple[str, str]:
    """(what recovery does, the outcome it delivers) for a transaction read as ``tx``."""
    if tx.outcome is None:
        return PRESUMED, "rollback"
    told = word(tx.outcome)
    assert told is not None
    return f"re-send {told}", told


def driven(
    before: Transaction, after: Transaction | None, finish: Finish, names: Sequence[str]
) -> tuple[TransactionAction, list[InDoubt]]:
    """What a pass did with one transaction: read as ``before``, left as ``after`` (None:
    its records were not written) with ``finish``; ``names`` of the members by position."""
    action, outcome = _action(before)
    pending = tuple(names[i] for i in finish.pending)
    entry = TransactionAction(
        txid=before.txid,
        mode=before.mode.value,
        state_before=before.state.value,
        action=action,
        outcome=outcome,
        finished=not finish.pending,
        pending=pending,
    )
    members = (after or before).members
    doubts = [
        InDoubt(
            txid=before.txid,
            participant=names[i],
            outcome=outcome,
            state=members[i].state.value,
            error=error or members[i].error,
            attempts=members[i].attempts,
        )
        for i, error in zip(finish.pending, finish.errors, strict=True)
    ]
    return entry, doubts


def planned(
    tx: Transaction, blocker: Callable[[int], str | None]
) -> tuple[TransactionAction, list[InDoubt]]:
    """What a pass would do with ``tx`` (a dry run): ``blocker(position)`` says why a member
    it would call cannot be (None: it can)."""
    action, outcome = _action(tx)
    members = tx.pending() if tx.outcome is not None else list(range(len(tx.members)))
    doubts = []
    for i in _called(tx, members):
        why = blocker(i)
        if why is not None:
            m = tx.members[i]
            doubts.append(InDoubt(tx.txid, m.name, outcome, m.state.value, why, m.attempts))
    targets = ", ".join(tx.members[i].name for i in members) or "nobody"
    entry = TransactionAction(
        txid=tx.txid,
        mode=tx.mode.value,
        state_before=tx.state.value,
        action=f"{action}: {targets}",
        outcome=outcome,
        finished=not doubts,
        pending=tuple(d.participant for d in doubts),
    )
    return entry, doubts


def _called(tx: Transaction, members: list[int]) -> list[int]:
    """The members the real pass would call (the machine's rules, docs/architecture.md): a
    saga commit calls nobody; a saga rollback compensates the steps whose action completed
    and the first step not known done (it may have run) and skips the rest."""
    if tx.mode is not Mode.SAGA:
        if tx.outcome is Outcome.COMMIT:
            return [i for i in members if tx.members[i].state is MemberState.PREPARED]
        return members
    if tx.outcome is Outcome.COMMIT:
        return []
    called, first_open = [], True
    for i in members:
        state = tx.members[i].state
        if state is MemberState.STEP_DONE:
            called.append(i)
        elif state is MemberState.ENLISTED and first_open:
            called.append(i)
            first_open = False
    return called


def pending_of(tx: Transaction) -> list[InDoubt]:
    """The members of unfinished ``tx`` still to be told its outcome: in doubt once tried
    (a Failed record) or when they cannot be rebuilt, else awaiting recovery."""
    if tx.ended:
        return []
    outcome = word(tx.outcome)
    members = tx.pending() if tx.outcome is not None else range(len(tx.members))
    out = []
    for i in members:
        m = tx.members[i]
        error = m.error or (None if m.recoverable else NOT_REBUILDABLE)
        out.append(
            InDoubt(
                tx.txid,
                m.name,
                outcome,
                m.state.value,
                error,
                m.attempts,
                awaiting_recovery=m.attempts == 0 and error is None,
            )
        )
    return out


def damaged(
    txid: str, damage: RecordDamagedError, records: Sequence[Record]
) -> tuple[TransactionAction, InDoubt]:
    """A transaction whose records cannot all be read back: left alone, in doubt."""
    where = "its index entry" if damage.seq is None else f"record {damage.seq}"
    return _left_alone(txid, f"damaged at {where}", str(damage), records)


def not_folding(
    txid: str, error: OutOfOrderError, records: Sequence[Record]
) -> tuple[TransactionAction, InDoubt]:
    """A transaction whose records break the transition table: left alone, in doubt."""
    return _left_alone(
        txid, "its records do not fold", f"its records do not fold: {error}", records
    )


def _left_alone(
    txid: str, what: str, error: str, records: Sequence[Record]
) -> tuple[TransactionAction, InDoubt]:
    first = records[0] if records else None
    mode = first.mode.value if isinstance(first, Opened) else None
    names = tuple(m.name for m in first.members) if isinstance(first, Opened) else ()
    try:
        state = fold(records).state.value
    except OutOfOrderError:
        state = "unknown"
    entry = TransactionAction(
        txid=txid,
        mode=mode,
        state_before=state,
        action=f"{what}: left alone",
        outcome=None,
        finished=False,
        pending=names or ("*",),
    )
    return entry, InDoubt(txid, "*", None, DAMAGED, error, 0, damaged=True)
