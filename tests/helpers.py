"""Test doubles shared by the suite: participants and saga steps that record every call.

Nothing here fakes the log: tests run a real LMDB log in ``tmp_path``. The doubles only
stand in for the resources a coordinator drives, and can be told to fail in a named phase
(the way zope ``transaction``'s tests use ``Resource('bbb', 'tpc_vote')``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dtc_wal.errors import VoteNo


class Journal:
    """A thread-safe list of ``(who, what, txid)`` calls in the order they happened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, str]] = []

    def add(self, who: str, what: str, txid: str) -> None:
        with self._lock:
            self.calls.append((who, what, txid))

    def of(self, txid: str) -> list[tuple[str, str]]:
        """``(who, what)`` pairs for one transaction, in call order."""
        with self._lock:
            return [(who, what) for who, what, t in self.calls if t == txid]

    def what(self, who: str, txid: str | None = None) -> list[str]:
        """The phases ``who`` was called in (optionally for one transaction only)."""
        with self._lock:
            return [w for n, w, t in self.calls if n == who and (txid is None or t == txid)]


class Failures:
    """How often a phase still has to fail, and with what (thread-safe countdown)."""

    def __init__(self, times: int = 0, error: Callable[[], BaseException] | None = None) -> None:
        self.times = times
        self.error = error or (lambda: RuntimeError("injected failure"))
        self._lock = threading.Lock()

    def maybe_raise(self) -> None:
        with self._lock:
            if self.times == 0:
                return
            if self.times > 0:
                self.times -= 1
        raise self.error()


FOREVER = -1


class RecordingParticipant:
    """A 2PC participant that records its calls in a :class:`Journal`.

    ``prepare_failures`` / ``commit_failures`` / ``rollback_failures`` make the phase raise
    the given number of times (``FOREVER`` for always) before it succeeds; ``vote_no``
    refuses every prepare with :class:`VoteNo`; ``on_prepare`` / ``on_commit`` run inside
    prepare / commit (after the call is recorded), e.g. to wait on a barrier or an event,
    or to look at the log at that moment.
    """

    def __init__(
        self,
        name: str,
        journal: Journal | None = None,
        *,
        vote_no: bool = False,
        prepare_failures: Failures | None = None,
        commit_failures: Failures | None = None,
        rollback_failures: Failures | None = None,
        on_prepare: Callable[[str, Mapping[str, Any]], None] | None = None,
        on_commit: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.journal = journal if journal is not None else Journal()
        self.vote_no = vote_no
        self.prepare_failures = prepare_failures or Failures()
        self.commit_failures = commit_failures or Failures()
        self.rollback_failures = rollback_failures or Failures()
        self.on_prepare = on_prepare
        self.on_commit = on_commit
        self.prepared_data: list[dict[str, Any]] = []

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.journal.add(self.name, "prepare", transaction_id)
        self.prepared_data.append(dict(data))
        if self.on_prepare is not None:
            self.on_prepare(transaction_id, data)
        if self.vote_no:
            raise VoteNo(f"{self.name} refuses")
        self.prepare_failures.maybe_raise()

    def commit(self, transaction_id: str) -> None:
        self.journal.add(self.name, "commit", transaction_id)
        if self.on_commit is not None:
            self.on_commit(transaction_id)
        self.commit_failures.maybe_raise()

    def rollback(self, transaction_id: str) -> None:
        self.journal.add(self.name, "rollback", transaction_id)
        self.rollback_failures.maybe_raise()

    def calls(self, phase: str) -> int:
        return self.journal.what(self.name).count(phase)

    def __repr__(self) -> str:
        return f"RecordingParticipant({self.name!r})"


class RecordingStep:
    """A saga step object (``action``/``compensate``) that records its calls."""

    def __init__(
        self,
        name: str,
        journal: Journal,
        *,
        action_failures: Failures | None = None,
        compensate_failures: Failures | None = None,
    ) -> None:
        self.name = name
        self.journal = journal
        self.action_failures = action_failures or Failures()
        self.compensate_failures = compensate_failures or Failures()
        self.data: list[dict[str, Any]] = []

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.journal.add(self.name, "action", transaction_id)
        self.data.append(dict(data))
        self.action_failures.maybe_raise()

    def compensate(self, transaction_id: str) -> None:
        self.journal.add(self.name, "compensate", transaction_id)
        self.compensate_failures.maybe_raise()


def saga_functions(
    name: str, journal: Journal, *, fail: bool = False, fail_compensation: bool = False
) -> tuple[Callable[[str, Mapping[str, Any]], None], Callable[[str], None]]:
    """A seed-style ``(commit_function, rollback_function)`` pair recording into ``journal``."""

    def commit_function(txid: str, data: Mapping[str, Any]) -> None:
        journal.add(name, "commit", txid)
        if fail:
            raise RuntimeError(f"{name} failed")

    def rollback_function(txid: str) -> None:
        journal.add(name, "rollback", txid)
        if fail_compensation:
            raise RuntimeError(f"compensating {name} failed")

    commit_function.__qualname__ = f"commit_{name}"
    rollback_function.__qualname__ = f"rollback_{name}"
    return commit_function, rollback_function


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (for thread hand-offs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.001)
    return predicate()
