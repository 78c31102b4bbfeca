"""The log's vocabulary in format 2: one record per protocol step, not per participant.

These are plain values. The protocol machines (:mod:`dtc_wal.protocol`) produce them, a log
backend (:mod:`dtc_wal.log`) frames and stores them, and folding them back into a
transaction's state is the protocol's job, not the log's: the log knows only that
:class:`Opened` starts a transaction and :class:`Ended` finishes it.

Members are named by their position in :attr:`Opened.members` (their registration order),
which keeps the records that follow small.

A 3-participant two-phase commit writes three records: ``Opened`` (durable before the first
prepare), ``Decided`` (durable before the first commit) and ``Ended`` (lazy). A member that
departs from the rest -- a failed attempt, a late acknowledgement, an operator's
resolution -- gets a record of its own (``Failed``, ``Acked``, ``Resolved``).

Status: the new core's vocabulary (issue 12); the running coordinator still writes format 1
(:mod:`dtc_wal.records`) until the new core replaces it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

__all__ = [
    "Ack",
    "Acked",
    "Decided",
    "Decision",
    "Ended",
    "Failed",
    "MemberSpec",
    "Mode",
    "Op",
    "Opened",
    "Record",
    "Resolved",
    "StepDone",
    "Vote",
]


class Mode(enum.StrEnum):
    """How a transaction drives its members; fixed by the first member that joins."""

    TWO_PHASE = "2pc"
    SAGA = "saga"


class Decision(enum.StrEnum):
    """The outcome of a transaction, decided once."""

    COMMIT = "commit"
    ABORT = "abort"


class Vote(enum.StrEnum):
    """A two-phase member's answer to prepare, when it is not a refusal."""

    YES = "yes"
    READ_ONLY = "read-only"
    """It changed nothing and leaves phase two (Narayana, Bitronix)."""


class Ack(enum.StrEnum):
    """What a member did once the transaction was decided."""

    COMMITTED = "commit"
    ROLLED_BACK = "rollback"
    SKIPPED = "skip"
    """Saga: the step never ran, so there was nothing to compensate."""


class Op(enum.StrEnum):
    """A call the coordinator makes on a member."""

    PREPARE = "prepare"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    ONE_PHASE = "one-phase commit"
    ACTION = "saga action"
    COMPENSATE = "compensation"


@dataclasses.dataclass(frozen=True, slots=True)
class MemberSpec:
    """How to find a member again after a restart: a registry factory and its params.

    ``factory`` is None for an object the caller passed directly: it cannot be rebuilt,
    and recovery reports it in doubt.
    """

    name: str
    factory: str | None = None
    params: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Opened:
    """Begun + every member enlisted, with the data the members are given.

    The data is known when this record is written (at commit time), and a saga's
    compensation after a crash needs it, so it travels here rather than in the decision.
    """

    txid: str
    at: float
    mode: Mode
    members: tuple[MemberSpec, ...]
    data: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StepDone:
    """Saga: the action of step ``index`` completed.

    Durable before step ``index + 1`` starts, so after a crash at most the first step
    without one may have run. The last step's completion travels in the commit decision.
    """

    txid: str
    at: float
    index: int


@dataclasses.dataclass(frozen=True, slots=True)
class Decided:
    """The outcome. ``votes`` lists, by member index, the votes known when it was decided
    (None: no vote was received); a saga's decision lists none."""

    txid: str
    at: float
    decision: Decision
    votes: tuple[Vote | None, ...] = ()
    reason: str | None = None
    actor: str | None = None
    """Who decided when it was not the protocol (an operator: ``user@host``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Acked:
    """Progress: these members acknowledged the outcome while others are still pending."""

    txid: str
    at: float
    acks: tuple[tuple[int, Ack], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Ended:
    """The acknowledgements of the last round; the transaction is finished."""

    txid: str
    at: float
    acks: tuple[tuple[int, Ack], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Failed:
    """A call on member ``member`` failed after its retries (informational)."""

    txid: str
    at: float
    member: int
    op: Op
    error: str
    attempts: int


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """An operator settled member ``member`` by hand (a heuristic outcome)."""

    txid: str
    at: float
    member: int
    ack: Ack
    actor: str
    reason: str | None = None


Record = Opened | StepDone | Decided | Acked | Ended | Failed | Resolved
