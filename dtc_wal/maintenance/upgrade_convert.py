"""One format-1 transaction in format-2 records, and the check that nothing changed.

:func:`convert` maps the records of one format-1 transaction (:mod:`dtc_wal.format1.records`)
to the format-2 records (:mod:`dtc_wal.protocol.records`) that say the same, keeping each
record's time:

==============================  ==========================================================
format 1                        format 2
==============================  ==========================================================
BEGUN + every ENLISTED          ``Opened``: members in their ``order``, with factory and
                                params; ``data`` from BEGUN (sagas) or DECIDED_COMMIT
PREPARED (2PC)                  the member's vote in ``Decided`` (yes, or read-only)
PREPARED (saga)                 ``StepDone``; the last step's travels in a commit decision
DECIDED_COMMIT / DECIDED_ABORT  ``Decided`` with the votes so far, reason and actor
ACKNOWLEDGED                    ``Acked`` (a saga's commit acks: none, the decision
                                settles its steps)
FAILED                          ``Failed``: op from the phase, attempts and error
RESOLVED                        ``Resolved`` (rollback is outcome abort)
COMPLETED                       ``Ended``
==============================  ==========================================================

Format 2 records votes only in the decision: the votes of an undecided 2PC transaction
have no place. A yes vote there changes nothing (presumed abort rolls the member back
either way) and reads back as ``enlisted``; a read-only vote would change what recovery
sends, so such a transaction is refused (:class:`NotConvertible`): recover the format-1
log first with the dtc-wal that wrote it (this version no longer runs format 1).
:func:`check_same` folds the result with the protocol's own transition table
(:func:`dtc_wal.protocol.fold`) and compares it with format 1's replay
(:func:`dtc_wal.format1.history.replay`); any difference refuses the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..format1 import vocabulary as f1
from ..format1.history import TransactionView, replay
from ..format1.records import LogRecord
from ..protocol import OutOfOrderError, Transaction, fold
from ..protocol.records import (
    Acked,
    Decided,
    Ended,
    Failed,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    Outcome,
    Record,
    Resolved,
    StepDone,
    Vote,
)

__all__ = ["NotConvertible", "check_same", "convert", "convert_checked"]

_R = f1.RecordType
_MODE = {f1.Mode.TWO_PHASE: Mode.TWO_PHASE, f1.Mode.SAGA: Mode.SAGA}
_ACKED = {
    f1.Outcome.COMMIT: MemberState.COMMITTED,
    f1.Outcome.ROLLBACK: MemberState.ROLLED_BACK,
    f1.Outcome.SKIP: MemberState.SKIPPED,
}
_SAME_STATE = {
    f1.ParticipantState.ENLISTED: MemberState.ENLISTED,
    f1.ParticipantState.COMMITTED: MemberState.COMMITTED,
    f1.ParticipantState.ROLLED_BACK: MemberState.ROLLED_BACK,
    f1.ParticipantState.SKIPPED: MemberState.SKIPPED,
    f1.ParticipantState.RESOLVED: MemberState.RESOLVED,
}


class NotConvertible(Exception):
    """This transaction cannot be written in format 2 saying the same; the message says
    why (the upgrade lists it and refuses)."""


def convert(records: Sequence[LogRecord]) -> tuple[Record, ...]:
    """The format-2 records of one format-1 transaction (its records in log order, which
    format 1's replay accepts). Raises :class:`NotConvertible`."""
    view = replay((i, r) for i, r in enumerate(records))
    txid = view.txid
    begun = records[0]
    mode = _MODE[view.mode] if view.mode is not None else Mode.TWO_PHASE
    position = {p.name: i for i, p in enumerate(view.ordered())}
    enlisted = {r.participant: r for r in records if r.type is _R.ENLISTED}
    members = tuple(
        MemberSpec(p.name, enlisted[p.name].factory, enlisted[p.name].params)
        for p in view.ordered()
    )
    saga = mode is Mode.SAGA
    commits = any(r.type is _R.DECIDED_COMMIT for r in records)
    last_step = len(members) - 1
    out: list[Record] = [Opened(txid, begun.at, mode, members, _data(txid, records))]
    votes: dict[int, Vote] = {}
    decided: f1.RecordType | None = None
    for record in records[1:]:
        kind = record.type
        at = record.at
        index = position.get(record.participant or "", -1)
        if kind is _R.PREPARED:
            if saga:
                if not (commits and index == last_step):
                    out.append(StepDone(txid, at, index))
            else:
                read_only = record.outcome is f1.Outcome.READ_ONLY
                votes[index] = Vote.READ_ONLY if read_only else Vote.YES
        elif kind in (_R.DECIDED_COMMIT, _R.DECIDED_ABORT):
            decided = kind
            outcome = Outcome.COMMIT if kind is _R.DECIDED_COMMIT else Outcome.ABORT
            ballot = tuple(sorted(votes.items()))
            out.append(Decided(txid, at, outcome, ballot, record.reason, record.actor))
        elif kind is _R.ACKNOWLEDGED:
            if not (saga and decided is _R.DECIDED_COMMIT):
                assert record.outcome is not None  # replay checked it
                out.append(Acked(txid, at, ((index, _ACKED[record.outcome]),)))
        elif kind is _R.FAILED:
            attempts = record.attempts if record.attempts is not None else 1
            op = _op(saga, decided)
            out.append(Failed(txid, at, index, op, record.error or "", attempts))
        elif kind is _R.RESOLVED:
            outcome = Outcome.COMMIT if record.outcome is f1.Outcome.COMMIT else Outcome.ABORT
            out.append(Resolved(txid, at, index, outcome, record.actor or "", record.reason or ""))
        elif kind is _R.COMPLETED:
            out.append(Ended(txid, at))
    if decided is None and not saga:
        voters = [members[i].name for i, v in votes.items() if v is Vote.READ_ONLY]
        if voters:
            raise NotConvertible(
                f"transaction {txid} is undecided and {', '.join(voters)} voted read-only: "
                "format 2 keeps votes only in a decision, and recovery would then roll back "
                "a read-only member. Recover the format-1 log first with the dtc-wal that "
                "wrote it (0.1: `pip install dtc-wal==0.1.0`, then `dtc recover`), then "
                "upgrade with this version"
            )
    return tuple(out)


def _data(txid: str, records: Sequence[LogRecord]) -> Mapping[str, Any] | None:
    """The commit data: BEGUN's (sagas) or DECIDED_COMMIT's (2PC), one value or none."""
    found = [r.data for r in records if r.data is not None]
    if not found:
        return None
    if any(d != found[0] for d in found[1:]):
        raise NotConvertible(
            f"transaction {txid} logged two different data values (on BEGUN and on the "
            "commit decision); format 2 keeps one"
        )
    data = found[0]
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise NotConvertible(
            f"transaction {txid}: its data is {type(data).__name__} {data!r:.60}, and format 2 "
            "keeps data as a map with str keys"
        )
    return data


def _op(saga: bool, decided: f1.RecordType | None) -> Op:
    """The operation a format-1 FAILED record's call ran, from the phase it came in."""
    if decided is None:
        return Op.ACTION if saga else Op.PREPARE
    if decided is _R.DECIDED_COMMIT:
        return Op.ACTION if saga else Op.COMMIT
    return Op.COMPENSATE if saga else Op.ROLLBACK


def expected_state(view: TransactionView, part: f1.ParticipantState) -> MemberState:
    """The format-2 member state that says what format-1 state ``part`` says."""
    same = _SAME_STATE.get(part)
    if same is not None:
        return same
    decided = view.state is not f1.TxState.ACTIVE
    if view.mode is f1.Mode.SAGA:  # PREPARED: the step's action completed
        return MemberState.COMMITTED if view.outcome is f1.Outcome.COMMIT else MemberState.STEP_DONE
    if not decided:  # votes before a decision: format 2 keeps none (see the module doc)
        return MemberState.ENLISTED
    return MemberState.READ_ONLY if part is f1.ParticipantState.READ_ONLY else MemberState.PREPARED


def check_same(records: Sequence[LogRecord], converted: Sequence[Record]) -> Transaction:
    """Fold ``converted`` with the protocol's transition table and compare it with format
    1's replay of ``records``; return the folded transaction or raise NotConvertible."""
    view = replay((i, r) for i, r in enumerate(records))
    txid = view.txid
    try:
        tx = fold(converted)
    except OutOfOrderError as exc:
        raise NotConvertible(f"the protocol refuses its format-2 records: {exc}") from exc
    diffs: list[str] = []

    def same(what: str, old: object, new: object) -> None:
        if old != new:
            diffs.append(f"{what}: format 1 {old!r}, format 2 {new!r}")

    same("state", view.state.value, tx.state.value)
    if view.mode is not None:
        same("mode", view.mode.value, tx.mode.value)
    same("opened at", view.created_at, tx.opened_at)
    same("decided at", view.decided_at, tx.decided_at)
    same("reason", view.reason, tx.reason)
    same("decided by", view.decided_by, tx.actor)
    same("data", _data(txid, records), tx.data)
    old_members = view.ordered()
    same("members", [p.name for p in old_members], [m.name for m in tx.members])
    attempts: dict[str, int] = {}
    for r in records:
        if r.type is _R.FAILED and r.participant is not None:
            attempts[r.participant] = attempts.get(r.participant, 0) + (
                r.attempts if r.attempts is not None else 1
            )
    for part, member in zip(old_members, tx.members, strict=False):
        name = part.name
        same(f"{name} state", expected_state(view, part.state).value, member.state.value)
        same(f"{name} factory", part.factory, member.factory)
        same(f"{name} params", part.params, dict(member.params or {}))
        same(f"{name} attempts", attempts.get(name, 0), member.attempts)
        res = member.resolution
        error = res.reason if res is not None and res.reason else member.error
        same(f"{name} last error", part.last_error, error)
        if part.resolution is not None:
            new = None if res is None else res.outcome.value
            old = "commit" if part.resolution is f1.Outcome.COMMIT else "abort"
            same(f"{name} resolution", old, new)
            same(f"{name} resolved by", part.resolved_by or "", res.actor if res else None)
    if diffs:
        raise NotConvertible(
            f"transaction {txid} would read back differently in format 2: " + "; ".join(diffs)
        )
    return tx


def convert_checked(records: Sequence[LogRecord]) -> tuple[tuple[Record, ...], Transaction]:
    """:func:`convert`, then :func:`check_same`: the records and their folded transaction."""
    converted = convert(records)
    return converted, check_same(records, converted)
