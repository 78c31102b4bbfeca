"""One machine's run as the driver sees it, without threads: the live members by
position, the exceptions behind each failure (for ``TransactionAborted.cause``), how a
call's result becomes an event, and how a :class:`~dtc_wal.protocol.Finish` becomes the
caller's result. A threaded driver (:mod:`.threaded`) and a later asyncio driver share it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..errors import CommitIncompleteError, TransactionAborted, VoteNo
from ..protocol import (
    Acknowledged,
    CallFailed,
    Event,
    FailureKind,
    Finish,
    Machine,
    Op,
    Outcome,
    Vote,
    Voted,
)
from .calls import CallResult
from .members import LiveMember

__all__ = ["Run", "to_event"]

_EMPTY: Mapping[str, Any] = {}


class Run:
    """A machine, its live members and what the driver learnt while running it."""

    __slots__ = (
        "data",
        "decided",
        "errors",
        "finish",
        "hits",
        "lock",
        "log_error",
        "machine",
        "members",
        "started",
        "txid",
    )

    def __init__(self, machine: Machine, members: list[LiveMember] | None = None) -> None:
        self.machine = machine
        self.txid = machine.txid
        self.members: list[LiveMember] = members if members is not None else []
        self.data: Mapping[str, Any] = _EMPTY
        self.errors: dict[int, BaseException] = {}  # member -> its last call's exception
        self.log_error: BaseException | None = None
        self.decided: Outcome | None = None
        self.finish: Finish | None = None
        self.started = False  # commit or rollback was asked (guarded by ``lock``)
        self.hits: dict[str, int] | None = None  # crash points passed (only when armed)
        self.lock = threading.Lock()

    def names(self, positions: tuple[int, ...]) -> list[str]:
        return [self.members[i].name for i in positions]

    def cause(self, finish: Finish) -> BaseException | None:
        """The exception whose failure decided an abort (None: the caller or recovery)."""
        if finish.member is not None:
            return self.errors.get(finish.member)
        return self.log_error if finish.error is not None else None

    def result(self) -> None:
        """Return for a complete commit; raise what the caller must see otherwise."""
        finish = self.finish
        assert finish is not None
        if finish.outcome is Outcome.COMMIT:
            if finish.pending:
                raise CommitIncompleteError(
                    self.txid, self.names(finish.pending), list(finish.errors)
                )
            return
        cause = self.cause(finish)
        reason = finish.reason or "rolled back"
        raise TransactionAborted(self.txid, reason, cause, self.names(finish.pending)) from cause


def to_event(now: float, member: int, op: Op, result: CallResult, retryable: bool) -> Event:
    """The event that reports one call's end (``retryable``: its error was one the policy
    retries, so it is a failure after retries, not a refusal)."""
    if result.ok:
        if op is Op.PREPARE:
            value = result.value
            vote = Vote.READ_ONLY if value is Vote.READ_ONLY else Vote.YES
            return Voted(now, member, vote)
        return Acknowledged(now, member, op)
    error = result.error
    kind = FailureKind.ERROR
    if op.forward and (isinstance(error, VoteNo) or not retryable):
        kind = FailureKind.REFUSED
    return CallFailed(now, member, op, result.error_text, result.attempts, kind)
