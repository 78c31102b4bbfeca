"""Operator resolution on the driver: a machine seeded from the log
(:meth:`~dtc_wal.protocol.Machine.recover`) takes the protocol's
:class:`~dtc_wal.protocol.Resolve` (or, for an undecided transaction,
:class:`~dtc_wal.protocol.Rollback`), and the driver appends what it returns.

The checks and their messages (what ``dtc resolve`` users see):

* decided: the operator settles pending members by hand (``member`` None: all of them);
  one that is not pending is refused (InvalidParticipantError), and an outcome against
  the decision is refused unless ``heuristic``. When none is left pending, the
  transaction ends (the Resolved records and Ended go in one durable append).
* undecided (no Decided record: its coordinator died before deciding): the operator may
  decide abort, recorded durably with ``actor`` and ``reason``; the next recovery pass
  delivers the rollbacks. Deciding commit is refused: format 2 logs the votes only with
  the decision, so an undecided transaction has no yes vote in the log, and the protocol
  machine takes only an abort decision on a seeded undecided transaction (the old core
  allowed commit when every yes vote was in the log; format 2 has none).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket

from ..errors import (
    InvalidOptionError,
    InvalidParticipantError,
    TransactionFinishedError,
    TransactionStateError,
    UnknownTransactionError,
)
from ..log_values import check_text
from ..protocol import Event, Machine, Outcome, Resolve, Rollback, Transaction
from ..protocol import Options as ProtocolOptions
from .members import LiveMember
from .recovery import transaction_of
from .report import word
from .run import Run
from .threaded import ThreadedDriver
from .translate import protocol_errors

__all__ = ["check_resolution", "resolve"]

log = logging.getLogger("dtc_wal.drivers")

_NOT_CALLED = "an operator's resolution calls no participant"


def check_resolution(outcome: object, reason: object, actor: object) -> None:
    """Refuse a bad outcome, reason or actor before anything is read."""
    if not isinstance(outcome, Outcome):
        raise InvalidOptionError(f"an operator resolves to commit or abort, not {outcome!r}")
    check_text(reason, "reason")  # both are logged
    if actor is not None:
        check_text(actor, "actor")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidOptionError(
            "say why: a resolution needs a reason for the log (a non-empty str), e.g. "
            "reason='refunded by hand, ticket 123'"
        )


def resolve(
    driver: ThreadedDriver,
    options: ProtocolOptions,
    txid: str,
    outcome: Outcome,
    *,
    reason: str,
    member: str | None,
    actor: str | None,
    heuristic: bool,
) -> Run:
    """Record the resolution; return the run it made (its machine's transaction is the
    transaction afterwards). The caller checked the arguments and that ``txid`` is not
    live, and keeps recovery passes out meanwhile."""
    actor = actor or default_actor()
    driver.log.flush()
    stored = driver.log.read(txid)
    if stored is None:
        raise UnknownTransactionError(txid)
    tx = transaction_of(stored, driver.log)
    if tx.ended:
        raise TransactionFinishedError(txid, tx.state.value)
    now = driver.clock.now()
    event: Event
    if tx.outcome is None:
        _check_undecided(tx, outcome, member)
        event = Rollback(now, reason, actor)
    else:
        position = _position(tx, outcome, member, heuristic)
        event = Resolve(now, position, outcome, actor, reason, heuristic)
    machine = Machine.recover(tx, options)
    run = Run(machine, [LiveMember(m.name, None, unavailable=_NOT_CALLED) for m in tx.members])
    run.started = True
    with protocol_errors():
        commands = machine.handle(event)
    driver.drive(run, commands)
    if run.log_error is not None:
        raise run.log_error
    after = machine.transaction
    assert after is not None
    _log(tx, after, outcome, member, actor, reason)
    return run


def _check_undecided(tx: Transaction, outcome: Outcome, member: str | None) -> None:
    txid = tx.txid
    if member is not None:
        raise TransactionStateError(
            f"transaction {txid} has no decision yet: decide it first (omit "
            "--participant), then settle single participants"
        )
    if outcome is Outcome.COMMIT:
        unprepared = ", ".join(m.name for m in tx.members) or "no participant"
        raise TransactionStateError(
            f"cannot decide commit for {txid}: {unprepared} never voted yes in the log; "
            "only abort is safe"
        )


def _position(tx: Transaction, outcome: Outcome, member: str | None, heuristic: bool) -> int | None:
    decided = tx.outcome
    assert decided is not None
    if outcome is not decided and not heuristic:
        raise TransactionStateError(
            f"transaction {tx.txid} is decided {word(decided)}; resolving a participant to "
            f"{word(outcome)} would contradict it. If that is what really happened, record "
            "it with heuristic=True (--heuristic)"
        )
    if member is None:
        return None
    pending = tx.pending()
    for i in pending:
        if tx.members[i].name == member:
            return i
    names = ", ".join(tx.members[i].name for i in pending) or "none"
    raise InvalidParticipantError(f"{member!r} is not pending in {tx.txid} (pending: {names})")


def _log(
    before: Transaction,
    after: Transaction,
    outcome: Outcome,
    member: str | None,
    actor: str,
    reason: str,
) -> None:
    txid = before.txid
    if before.outcome is None:
        log.warning(
            "txid=%s operator %s decided %s: %s",
            txid,
            actor,
            word(outcome),
            reason,
            extra={"txid": txid},
        )
        return
    settled = [
        m.name
        for m, was in zip(after.members, before.members, strict=True)
        if m.resolution is not None and was.resolution is None
    ]
    log.warning(
        "txid=%s operator %s resolved %s as %s%s: %s",
        txid,
        actor,
        ", ".join(settled) or member,
        word(outcome),
        " (heuristic)" if outcome is not before.outcome else "",
        reason,
        extra={"txid": txid},
    )


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
