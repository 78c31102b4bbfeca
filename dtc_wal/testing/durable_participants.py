"""The durable test participants: a 2PC participant and a saga step whose state lives in
their own SQLite file (:mod:`.durable_store`), so it survives a SIGKILL.

2PC participant (:class:`DurableParticipant`) -- states and what each call does:

==========  ===================  ============================================
call        state before         result
==========  ===================  ============================================
prepare     none                 ``prepared`` (or ``refused`` when it votes no)
prepare     prepared/committed   nothing: yes again
prepare     rolled back/refused  VoteNo (a prepare that arrives after rollback)
commit      prepared             ``committed``
commit      committed            nothing (duplicate)
rollback    none                 ``null-rollback`` (it never prepared)
rollback    prepared             ``rolled-back``
rollback    rolled back/refused  nothing (duplicate)
==========  ===================  ============================================

"Rolled back" includes ``rolled-back-prepared``, the state a PreparedResource's
``rollback_prepared`` leaves (:mod:`.durable_resource`).

One-phase participant (:class:`OnePhaseDurableParticipant`, a 2PC participant with
``commit_one_phase``): ``commit_one_phase`` takes none to ``committed-one-phase`` in one
atomic step (or to ``refused`` with ``vote_no``), does nothing when already committed that
way, and votes no after a rollback or refusal. Any other call on ``committed-one-phase``
(prepare, commit, rollback) is an anomaly: the one-phase path sends none of them.

Listing participant (:class:`ListingDurableParticipant`): a 2PC participant with
``lists_prepared = True``, whose prepared transactions the resource of
:mod:`.durable_resource` lists and settles.

Saga step (:class:`DurableStep`): ``action`` records ``applied`` (idempotent; VoteNo after a
compensation), ``compensate`` records ``compensated``, or ``null-compensation`` when the
action never ran.

A call the protocol forbids -- commit of a transaction not prepared, rollback or
compensation after commit... -- is written to the ``anomaly`` table and raises; the checker
reports every anomaly as a coordinator bug.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import VoteNo
from .durable_reader import read_states
from .durable_store import (
    APPLIED,
    COMMITTED,
    COMMITTED_ONE_PHASE,
    COMPENSATED,
    NULL_COMPENSATION,
    NULL_ROLLBACK,
    PREPARED,
    REFUSED,
    ROLLED_BACK,
    ROLLED_BACK_PREPARED,
    UNDONE_STATES,
    DurableFile,
)

__all__ = [
    "AFTER_LIMIT",
    "DurableParticipant",
    "DurableStep",
    "ListingDurableParticipant",
    "OnePhaseDurableParticipant",
]

AFTER_LIMIT = 5.0


class DurableParticipant(DurableFile):
    """A 2PC participant with its state in ``<directory>/<name>.sqlite``.

    ``vote_no`` refuses every prepare; ``delay`` sleeps before each prepare; ``after`` names
    participants (in the same directory) whose prepare of the transaction must be on disk
    before this one answers -- so they vote first (waits at most ``AFTER_LIMIT`` seconds,
    then answers anyway). ``fail_commits``: the first that many
    commit calls for each transaction raise ``ConnectionError`` (counted on disk, across
    objects and processes: a participant that comes back).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str,
        *,
        vote_no: bool = False,
        delay: float = 0.0,
        fail_commits: int = 0,
        after: Iterable[str] = (),
    ) -> None:
        super().__init__(directory, name, delay)
        self.vote_no = vote_no
        self.after = tuple(after)
        self.fail_commits = fail_commits

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.after:
            self._wait_for(self.after, transaction_id)
        if self.vote_no:
            self._transition(
                "prepare",
                transaction_id,
                {
                    None: REFUSED,
                    REFUSED: None,
                    ROLLED_BACK: None,
                    NULL_ROLLBACK: None,
                    ROLLED_BACK_PREPARED: None,
                },
            )
            raise VoteNo(f"{self.name} votes no (vote_no=True)")
        state = self._transition(
            "prepare",
            transaction_id,
            {
                None: PREPARED,
                PREPARED: None,
                COMMITTED: None,
                ROLLED_BACK: None,
                NULL_ROLLBACK: None,
                REFUSED: None,
                ROLLED_BACK_PREPARED: None,
            },
        )
        if state in UNDONE_STATES:
            raise VoteNo(f"{self.name}: {transaction_id} was already rolled back ({state})")

    def _wait_for(self, names: tuple[str, ...], txid: str) -> None:
        deadline = time.monotonic() + AFTER_LIMIT
        while time.monotonic() < deadline:
            try:
                held = read_states(self.directory, names).states.get(txid, {})
            except sqlite3.Error:  # a file still being created: look again
                held = {}
            if all(name in held for name in names):
                time.sleep(0.01)  # and let their prepare calls return to the coordinator
                return
            time.sleep(0.005)

    def commit(self, transaction_id: str) -> None:
        if self.fail_commits and self._count_failure("commit", transaction_id, self.fail_commits):
            raise ConnectionError(f"{self.name}: commit of {transaction_id} failed (fail_commits)")
        self._transition("commit", transaction_id, {PREPARED: COMMITTED, COMMITTED: None})

    def rollback(self, transaction_id: str) -> None:
        self._transition(
            "rollback",
            transaction_id,
            {
                None: NULL_ROLLBACK,
                PREPARED: ROLLED_BACK,
                ROLLED_BACK: None,
                NULL_ROLLBACK: None,
                REFUSED: None,
                ROLLED_BACK_PREPARED: None,
            },
        )


class OnePhaseDurableParticipant(DurableParticipant):
    """A :class:`DurableParticipant` that can also commit in one phase when it is alone.

    ``commit_one_phase`` is one atomic check-and-set, with no prepared state in between:
    idempotent (a repeat after a timeout does nothing), a refusal (``vote_no``) records
    ``refused``, and it refuses -- VoteNo -- a transaction already rolled back."""

    def commit_one_phase(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)
        undone: dict[str | None, str | None] = {
            ROLLED_BACK: None,
            NULL_ROLLBACK: None,
            REFUSED: None,
            ROLLED_BACK_PREPARED: None,
        }
        if self.vote_no:
            self._transition("commit-one-phase", transaction_id, {None: REFUSED, **undone})
            raise VoteNo(f"{self.name} refuses the one-phase commit (vote_no=True)")
        state = self._transition(
            "commit-one-phase",
            transaction_id,
            {None: COMMITTED_ONE_PHASE, COMMITTED_ONE_PHASE: None, **undone},
        )
        if state in UNDONE_STATES:
            raise VoteNo(f"{self.name}: {transaction_id} was already rolled back ({state})")


class ListingDurableParticipant(DurableParticipant):
    """A :class:`DurableParticipant` whose prepared transactions a PreparedResource lists
    (:class:`~.durable_resource.DurablePreparedResource`), so the coordinator may skip the
    forced opening write."""

    lists_prepared = True


class DurableStep(DurableFile):
    """A saga step with its state in ``<directory>/<name>.sqlite``; ``fail`` makes every
    action raise (after ``delay`` seconds) without doing anything."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str,
        *,
        fail: bool = False,
        delay: float = 0.0,
    ) -> None:
        super().__init__(directory, name, delay)
        self.fail = fail

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)
        self._reachable("action", transaction_id)
        if self.fail:
            raise RuntimeError(f"{self.name}: action fails (fail=True)")
        state = self._transition(
            "action",
            transaction_id,
            {None: APPLIED, APPLIED: None, COMPENSATED: None, NULL_COMPENSATION: None},
        )
        if state in UNDONE_STATES:
            raise VoteNo(f"{self.name}: {transaction_id} was already compensated ({state})")

    def compensate(self, transaction_id: str) -> None:
        self._transition(
            "compensate",
            transaction_id,
            {
                None: NULL_COMPENSATION,
                APPLIED: COMPENSATED,
                COMPENSATED: None,
                NULL_COMPENSATION: None,
            },
        )
