"""Commands: what a machine asks its driver to do, in the order given.

* :class:`Append` -- write these records. ``durable`` ones are synced and reported with
  :class:`~.events.Durable`; the machine issues nothing that depends on them before that.
  Lazy ones ride the next sync (group commit) and are not reported.
* :class:`Call` -- run ``op`` on a member by ``deadline``; report how it ended. Calls
  returned together may run in parallel; the machine never has two calls in flight to one
  member.
* :class:`Decision` -- the outcome is fixed (a commit: durable). Once per machine run,
  before its :class:`Finish`; a driver can hand back a ``wait=False`` handle here.
* :class:`Finish` -- the run is over: nothing in flight, nothing more will be issued.
"""

from __future__ import annotations

import dataclasses
from typing import TypeAlias

from .records import Record
from .vocabulary import Op, Outcome, Retry

__all__ = ["Append", "Call", "Command", "Decision", "Finish"]


@dataclasses.dataclass(slots=True)
class Append:
    """Append ``records`` to the log in this order, after every earlier append."""

    id: int
    records: tuple[Record, ...]
    durable: bool


@dataclasses.dataclass(slots=True)
class Call:
    """Call ``op`` on member ``member``. ``deadline`` is absolute (the event's ``now`` plus
    the configured timeout; None: no limit): a call not answered by then is reported as
    :attr:`~.vocabulary.FailureKind.TIMED_OUT`. ``retry`` says which errors to retry."""

    member: int
    op: Op
    deadline: float | None
    retry: Retry


@dataclasses.dataclass(slots=True)
class Decision:
    """The transaction's outcome is fixed: a commit decision is durable, or an abort was
    decided (abort decisions are lazy: presumed abort covers their loss)."""

    outcome: Outcome


@dataclasses.dataclass(slots=True)
class Finish:
    """The run ended.

    ``pending`` are the members whose outcome is not acknowledged yet, ``errors`` their last
    errors (same order; "" when none): with outcome commit that is *commit incomplete*, and
    recovery finishes it. For an abort, ``reason`` says why, and ``member``/``error`` name
    the member whose failure decided it (None when the caller, an operator, recovery or the
    log decided).
    """

    outcome: Outcome
    pending: tuple[int, ...] = ()
    errors: tuple[str, ...] = ()
    reason: str | None = None
    member: int | None = None
    error: str | None = None

    @property
    def complete(self) -> bool:
        """True when every member is settled."""
        return not self.pending


Command: TypeAlias = Append | Call | Decision | Finish
