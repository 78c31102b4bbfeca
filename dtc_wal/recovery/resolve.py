"""Operator resolution of in-doubt transactions, written to the log as its own records.

Two cases (docs/recovery.md, "What an operator does"):

* the transaction has no decision (its coordinator died before deciding and recovery has not
  run): the operator may decide it. ``commit`` needs every participant prepared in the log;
  the DECIDED_* record carries ``actor`` and ``reason``.
* the transaction is decided but a participant cannot be reached or rebuilt: the operator
  settles that participant by hand and records a RESOLVED record (``outcome``, ``actor``,
  ``reason``). The transaction's outcome never changes; a resolution that contradicts it is
  refused unless ``heuristic=True`` (then it is recorded as a heuristic outcome).

When no participant is pending any more the transaction is COMPLETED.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket

from ..clock import Clock, SystemClock
from ..errors import (
    InvalidOptionError,
    InvalidParticipantError,
    TransactionFinishedError,
    TransactionStateError,
    UnknownTransactionError,
)
from ..history import TransactionView
from ..log_values import check_text
from ..records import LogRecord
from ..states import Outcome, ParticipantState, RecordType, TxState
from ..wal.writer import WriteAheadLog

__all__ = ["default_actor", "resolve_transaction"]

log = logging.getLogger("dtc_wal.recovery")


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def resolve_transaction(
    wal: WriteAheadLog,
    txid: str,
    outcome: Outcome,
    *,
    reason: str,
    participant: str | None = None,
    actor: str | None = None,
    heuristic: bool = False,
    clock: Clock | None = None,
) -> TransactionView:
    """Record an operator's decision; return the transaction's view afterwards."""
    if outcome not in (Outcome.COMMIT, Outcome.ROLLBACK):
        raise InvalidOptionError(f"an operator resolves to commit or rollback, not {outcome!r}")
    check_text(reason, "reason")  # both are logged
    if actor is not None:
        check_text(actor, "actor")
    if not reason.strip():
        raise InvalidOptionError(
            "say why: a resolution needs a reason for the log (a non-empty str), e.g. "
            "reason='refunded by hand, ticket 123'"
        )
    actor = actor or default_actor()
    now = (clock or SystemClock()).now
    wal.flush()
    view = wal.view(txid)
    if view is None:
        raise UnknownTransactionError(txid)
    if view.state.finished:
        raise TransactionFinishedError(txid, view.state.value)
    records: list[LogRecord] = []
    if view.state is TxState.ACTIVE:
        if participant is not None:
            raise TransactionStateError(
                f"transaction {txid} has no decision yet: decide it first (omit "
                "--participant), then settle single participants"
            )
        if outcome is Outcome.COMMIT:
            voted = (ParticipantState.PREPARED, ParticipantState.READ_ONLY)
            unprepared = [p.name for p in view.ordered() if p.state not in voted]
            if unprepared:
                raise TransactionStateError(
                    f"cannot decide commit for {txid}: {', '.join(unprepared)} never voted yes "
                    "in the log; only abort is safe"
                )
        kind = RecordType.DECIDED_COMMIT if outcome is Outcome.COMMIT else RecordType.DECIDED_ABORT
        records.append(LogRecord(kind, txid, now(), reason=reason, actor=actor))
        wal.append(records)
        log.warning(
            "txid=%s operator %s decided %s: %s",
            txid,
            actor,
            outcome.value,
            reason,
            extra={"txid": txid},
        )
        resolved = wal.view(txid)
        assert resolved is not None
        return resolved

    decided = view.outcome
    if outcome is not decided and not heuristic:
        raise TransactionStateError(
            f"transaction {txid} is decided {decided.value if decided else '?'}; resolving a "
            f"participant to {outcome.value} would contradict it. If that is what really "
            "happened, record it with heuristic=True (--heuristic)"
        )
    pending = view.pending()
    if participant is not None:
        match = [p for p in pending if p.name == participant]
        if not match:
            names = ", ".join(p.name for p in pending) or "none"
            raise InvalidParticipantError(
                f"{participant!r} is not pending in {txid} (pending: {names})"
            )
        pending = match
    for p in pending:
        records.append(
            LogRecord(
                RecordType.RESOLVED,
                txid,
                now(),
                participant=p.name,
                outcome=outcome,
                reason=reason,
                actor=actor,
            )
        )
    remaining = {p.name for p in view.pending()} - {p.name for p in pending}
    if not remaining:
        records.append(LogRecord(RecordType.COMPLETED, txid, now()))
    wal.append(records)
    log.warning(
        "txid=%s operator %s resolved %s as %s%s: %s",
        txid,
        actor,
        ", ".join(p.name for p in pending),
        outcome.value,
        " (heuristic)" if outcome is not decided else "",
        reason,
        extra={"txid": txid},
    )
    resolved = wal.view(txid)
    assert resolved is not None
    return resolved
