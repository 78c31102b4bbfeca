"""The world outside the coordinator: external systems that outlive a coordinator crash.

A :class:`System` stands for a real resource (a database, a payment API). Its state --
what it prepared, committed, rolled back, which saga actions it did and compensated --
lives here, in the test process, not in the coordinator; so after ``abandon()`` (the
in-process kill -9) a new coordinator rebuilds participants from the registry and talks to
the same systems, as it would after a real crash.

Systems behave like careful participants (docs/protocol.md): commit and rollback are
idempotent, a rollback may arrive before prepare (null rollback), and a prepare that
arrives after rollback votes no. Anything the coordinator must never do -- commit what was
rolled back, roll back what was committed, commit without a yes-vote, act after a
compensation -- is recorded in :attr:`System.violations` instead of raised, so the tests
report it as an invariant failure.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from dtc_wal import ParticipantRegistry
from dtc_wal.errors import ParticipantTimeoutError, TransientError, VoteNo

#: Phases a failure countdown applies to.
PREPARE_PHASES = ("prepare", "action")
PHASE2_PHASES = ("commit", "rollback", "compensate")

#: Registry factory that builds a 2PC participant for ``params={"system": name}``.
TWO_PHASE_FACTORY = "system"


def step_factory(system: str) -> str:
    """Registry name of the saga step for ``system`` (the step is named after it too)."""
    return f"step:{system}"


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How a system answers, for every transaction it takes part in.

    * ``ok``: always says yes and acknowledges at once;
    * ``vote-no``: refuses every prepare / saga action with :class:`VoteNo`;
    * ``transient``: raises :class:`TransientError` ``n`` times per transaction in prepare
      (or the saga action), then succeeds;
    * ``hang``: never answers prepare in time -- modelled deterministically by raising
      :class:`ParticipantTimeoutError`, which is what the coordinator sees for a hang;
    * ``phase2-fail``: prepares fine, then fails commit / rollback / compensation ``n``
      times per transaction before acknowledging.

    Unreachability is not a behaviour but a switch on the system (:attr:`System.unreachable`).
    """

    kind: str
    n: int = 0

    def initial_failures(self, phase: str) -> int:
        if phase in PREPARE_PHASES and self.kind == "transient":
            return self.n
        if phase in PHASE2_PHASES and self.kind == "phase2-fail":
            return self.n
        return 0

    def __str__(self) -> str:
        return f"{self.kind}({self.n})" if self.n else self.kind


class System:
    """One external resource; thread-safe; keyed by transaction id like a real one."""

    def __init__(self, name: str, behaviour: Behaviour) -> None:
        self.name = name
        self.behaviour = behaviour
        self.unreachable = False
        self._lock = threading.Lock()
        self.prepared: dict[str, dict[str, Any]] = {}  # txid -> data it was asked to hold
        self.committed: set[str] = set()
        self.rolled_back: set[str] = set()
        self.done: dict[str, dict[str, Any]] = {}  # saga: txid -> data of the action
        self.compensated: set[str] = set()
        self.settled_by_hand: dict[str, str] = {}  # txid -> outcome an operator applied
        self.calls: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self._failures: dict[tuple[str, str], int] = {}
        self._last_failed: set[tuple[str, str]] = set()

    # -- failure bookkeeping ----------------------------------------------------------------

    def remaining(self, phase: str, txid: str) -> int:
        """How often ``phase`` will still fail for ``txid`` (its countdown)."""
        with self._lock:
            return self._failures.get((phase, txid), self.behaviour.initial_failures(phase))

    def _enter(self, phase: str, txid: str) -> None:
        self.calls.append((phase, txid))
        if self.unreachable:
            raise ConnectionError(f"{self.name} is unreachable")

    def failed_last(self, phase: str, txid: str) -> bool:
        """Whether the last call of ``phase`` for ``txid`` failed on purpose."""
        with self._lock:
            return (phase, txid) in self._last_failed

    def _countdown(self, phase: str, txid: str, error: type[Exception]) -> None:
        key = (phase, txid)
        left = self._failures.get(key, self.behaviour.initial_failures(phase))
        if left > 0:
            self._failures[key] = left - 1
            self._last_failed.add(key)
            raise error(f"{self.name}: {phase} failed, {left - 1} more failure(s) to come")
        self._failures[key] = 0
        self._last_failed.discard(key)

    def _vote(self, phase: str, txid: str) -> None:
        kind = self.behaviour.kind
        if kind == "vote-no":
            raise VoteNo(f"{self.name} votes no")
        if kind == "hang":
            raise ParticipantTimeoutError(f"{self.name} did not answer {phase} in time")
        self._countdown(phase, txid, TransientError)

    # -- two-phase commit -----------------------------------------------------------------

    def prepare(self, txid: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._enter("prepare", txid)
            if txid in self.rolled_back:
                raise VoteNo(f"{self.name}: prepare after rollback of {txid}")
            self._vote("prepare", txid)
            self.prepared[txid] = dict(data)

    def commit(self, txid: str) -> None:
        with self._lock:
            self._enter("commit", txid)
            if txid in self.rolled_back:
                self.violations.append(f"{self.name}: commit of {txid} after its rollback")
            if txid not in self.prepared:
                self.violations.append(f"{self.name}: commit of {txid} without a yes-vote")
            self._countdown("commit", txid, RuntimeError)
            self.committed.add(txid)

    def rollback(self, txid: str) -> None:
        with self._lock:
            self._enter("rollback", txid)
            if txid in self.committed:
                self.violations.append(f"{self.name}: rollback of {txid} after its commit")
            self._countdown("rollback", txid, RuntimeError)
            self.rolled_back.add(txid)

    # -- saga steps ---------------------------------------------------------------------------

    def action(self, txid: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._enter("action", txid)
            if txid in self.compensated:
                self.violations.append(f"{self.name}: saga action of {txid} after compensation")
            if txid in self.done:
                self.violations.append(f"{self.name}: saga action of {txid} ran twice")
            self._vote("action", txid)
            self.done[txid] = dict(data)

    def compensate(self, txid: str) -> None:
        with self._lock:
            self._enter("compensate", txid)
            self._countdown("compensate", txid, RuntimeError)
            self.compensated.add(txid)  # a null compensation when the action never ran

    # -- operators --------------------------------------------------------------------------

    def settle(self, txid: str, outcome: str, saga: bool) -> None:
        """What an operator does by hand before recording ``dtc resolve``."""
        with self._lock:
            self.settled_by_hand[txid] = outcome
            if saga:
                if outcome == "rollback":
                    self.compensated.add(txid)
            elif outcome == "commit":
                self.committed.add(txid)
            else:
                self.rolled_back.add(txid)

    # -- what happened to a transaction -------------------------------------------------------

    def effect(self, txid: str) -> str | None:
        """``commit``/``rollback`` as this system finally applied it, or None (nothing)."""
        with self._lock:
            if txid in self.committed:
                return "commit"
            if txid in self.rolled_back or txid in self.compensated:
                return "rollback"
            if txid in self.done:
                return "commit"  # a saga action stands until compensated
            return None


class TwoPhaseProxy:
    """A 2PC participant object talking to a :class:`System` (what a driver would be)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.name = system.name

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.system.prepare(transaction_id, data)

    def commit(self, transaction_id: str) -> None:
        self.system.commit(transaction_id)

    def rollback(self, transaction_id: str) -> None:
        self.system.rollback(transaction_id)


class SagaProxy:
    """A saga step object (``action``/``compensate``) talking to a :class:`System`."""

    def __init__(self, system: System) -> None:
        self.system = system

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.system.action(transaction_id, data)

    def compensate(self, transaction_id: str) -> None:
        self.system.compensate(transaction_id)


class World:
    """Every system, by name. Survives coordinator crashes; hands out fresh registries."""

    def __init__(self) -> None:
        self.systems: dict[str, System] = {}

    def add(self, behaviour: Behaviour) -> System:
        system = System(f"s{len(self.systems)}", behaviour)
        self.systems[system.name] = system
        return system

    def connect(self, name: str) -> System:
        """What a factory does first: reach the system, or fail like a refused connection."""
        system = self.systems[name]
        if system.unreachable:
            raise ConnectionError(f"cannot connect to {name}: unreachable")
        return system

    def registry(self) -> ParticipantRegistry:
        """A new registry, as a restarted process would build at start-up."""
        registry = ParticipantRegistry()

        def two_phase(system: str) -> TwoPhaseProxy:
            return TwoPhaseProxy(self.connect(system))

        registry.register(TWO_PHASE_FACTORY, two_phase)
        for name in self.systems:
            self.register_step(registry, name)
        return registry

    def register_step(self, registry: ParticipantRegistry, name: str) -> None:
        registry.register(step_factory(name), lambda **_params: SagaProxy(self.connect(name)))

    def violations(self) -> list[str]:
        return [v for s in self.systems.values() for v in s.violations]

    def effects(self, txid: str) -> dict[str, str]:
        """``{system: "commit" | "rollback"}`` for every system that applied something."""
        out = {}
        for name, system in self.systems.items():
            effect = system.effect(txid)
            if effect is not None:
                out[name] = effect
        return out
