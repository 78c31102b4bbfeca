"""Optional participant abilities, declared as contracts and read once, at enlist time.

A two-phase participant (:class:`dtc_wal.participant.Participant`) may also offer:

* :class:`ListsPrepared` -- ``lists_prepared = True``: a
  :class:`~dtc_wal.participant.PreparedResource` in the registry can list what it holds
  prepared, so the coordinator need not force its opening record to disk before prepare
  when every participant of a transaction says so (docs/protocol.md);
* :class:`~dtc_wal.participant.OnePhaseParticipant` -- ``commit_one_phase``: commit in one
  call when it is the transaction's only participant;
* :class:`BatchParticipant` -- ``commit_many`` / ``rollback_many``: deliver one outcome for
  many transactions in one call (asynchronous phase two batches them).

:func:`abilities_of` is the one place these are looked up; the drivers use its answer and
never probe the object again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Abilities", "BatchParticipant", "ListsPrepared", "abilities_of"]


@runtime_checkable
class ListsPrepared(Protocol):
    """A participant whose prepared work a registered ``PreparedResource`` can list."""

    lists_prepared: bool
    """True when the resource registered for it lists what it holds prepared (XA
    ``recover``, ``pg_prepared_xacts``); recovery then rolls back what the log shows no
    commit decision for, and its opening record need not be forced before prepare."""


@runtime_checkable
class BatchParticipant(Protocol):
    """A participant that can deliver one outcome for many transactions in one call."""

    def commit_many(self, transaction_ids: Sequence[str]) -> None:
        """Commit every listed prepared transaction, with ``commit``'s rules: idempotent,
        must not fail for a business reason; an exception means "not yet" for all of them
        (each is then retried on its own)."""

    def rollback_many(self, transaction_ids: Sequence[str]) -> None:
        """Roll back every listed transaction, with ``rollback``'s rules."""


@dataclasses.dataclass(frozen=True, slots=True)
class Abilities:
    """What a participant object offers beyond the base contract."""

    lists_prepared: bool = False
    one_phase: bool = False
    commit_many: bool = False
    rollback_many: bool = False


NONE = Abilities()


def abilities_of(obj: object) -> Abilities:
    """Read the optional abilities of ``obj`` once (``lists_prepared`` must be ``True``
    itself, not merely truthy: a mistyped attribute must not skip a forced write)."""
    lists = getattr(obj, "lists_prepared", False) is True
    one_phase = callable(getattr(obj, "commit_one_phase", None))
    many = callable(getattr(obj, "commit_many", None))
    rollback_many = callable(getattr(obj, "rollback_many", None))
    if not (lists or one_phase or many or rollback_many):
        return NONE
    return Abilities(lists, one_phase, many, rollback_many)
