"""Starting transactions and letting participants join them."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ..abilities import abilities_of
from ..errors import (
    DuplicateParticipantError,
    InvalidParticipantError,
    MixedTransactionError,
    NotRecoverableError,
    NotRecoverableWarning,
    TransactionStateError,
)
from ..log_values import check_text, encode_mapping
from ..participant import (
    NOT_RECOVERABLE,
    CallableStep,
    as_participant,
    as_saga_step,
    compensation_takes_data,
)
from ..states import Mode
from .base import CoordinatorBase
from .live import LiveTransaction, Member, Phase

__all__ = ["Joining"]

log = logging.getLogger("dtc_wal.coordinator")


class Joining(CoordinatorBase):
    def begin_transaction(self) -> str:
        """Start a transaction and return its id (a UUID4 string)."""
        txid = str(uuid.uuid4())
        tx = LiveTransaction(txid, self.clock.now(), self.clock.monotonic())
        with self._lock:
            self._check_open()
            self._live[txid] = tx
        self._counters.add("begun")
        log.info("txid=%s begun", txid, extra={"txid": txid})
        return txid

    def enlist_participant(
        self,
        txid: str,
        participant: object,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Add a two-phase-commit participant; return the name it is logged under.

        ``participant`` is an object with ``prepare``/``commit``/``rollback``, or the name of
        a registry factory -- then it is built with ``params`` now and rebuilt from
        ``(name, params)`` by recovery after a crash. Objects passed directly cannot be
        rebuilt after a crash: give them a factory for that. Under ``strict=True`` they are
        refused with :class:`~dtc_wal.errors.NotRecoverableError`; by default they are
        accepted without a warning: the object form is never recoverable, as documented.
        """
        if isinstance(participant, str):
            factory: str | None = participant
            member_name = name or participant
            obj = self._create(participant, params, txid)
            as_participant(obj, f"factory {participant!r}")
        else:
            if params is not None:
                raise InvalidParticipantError(
                    "params are for participants built from a registry factory; pass the "
                    "factory name as the participant to use them"
                )
            factory = None
            obj = as_participant(participant, "enlisted object")
            member_name = name or getattr(participant, "name", None) or type(participant).__name__
            if not isinstance(member_name, str):
                raise InvalidParticipantError("a participant name is a string")
            if self.strict:
                self._get_live(txid)  # an unknown transaction is reported as such first
                why = f"an object ({type(participant).__name__}) enlisted directly"
                message = _not_recoverable(Mode.TWO_PHASE, member_name, why)
                raise NotRecoverableError(f"{message} (refused: strict=True)")
        return self._join(txid, Mode.TWO_PHASE, member_name, obj, factory, params, name is not None)

    def register_participant(
        self,
        txid: str,
        service_name: str,
        commit_function: Callable[[str, Mapping[str, Any]], object] | None = None,
        rollback_function: Callable[..., object] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        factory: str | None = None,
    ) -> None:
        """Add a saga step; steps run in registration order, compensations in reverse.

        With ``commit_function(txid, data)`` and ``rollback_function(txid)`` -- or
        ``rollback_function(txid, data)``, which gets the data the action got -- the step
        is those callables. When both are importable module-level functions their import
        paths are logged and recovery rebuilds the step by import after a crash; anything
        else (a lambda, a closure, a bound method, a callable object, a function of the
        script run as ``__main__``) cannot be rebuilt: a
        :class:`~dtc_wal.errors.NotRecoverableWarning` says so, or under ``strict=True`` a
        :class:`~dtc_wal.errors.NotRecoverableError` refuses the step.

        Without the functions the step is built by the registry factory ``factory``
        (default: ``service_name``) with ``params``, returning an object with ``action``
        and ``compensate`` (optionally ``compensate(txid, data)``), which recovery
        rebuilds -- so one factory can serve several steps under different service names.
        """
        if commit_function is None and rollback_function is None:
            factory = factory or service_name
            obj: object = self._create(factory, params, txid)
            as_saga_step(obj, f"factory {factory!r}")
        elif commit_function is None or rollback_function is None:
            raise InvalidParticipantError(
                "register_participant needs both commit_function and rollback_function, or "
                "neither (then service_name names a registry factory)"
            )
        else:
            step = CallableStep(commit_function, rollback_function)
            if factory is not None:
                raise InvalidParticipantError(
                    "factory is for steps built from the registry; omit the functions to use it"
                )
            if params is not None:
                raise InvalidParticipantError(
                    "params are for steps built from a registry factory; omit the functions "
                    "to use them"
                )
            factory, params = step.log_entry()
            if factory is None:
                self._get_live(txid)  # an unknown transaction is reported as such first
                message = _not_recoverable(Mode.SAGA, service_name, params[NOT_RECOVERABLE])
                if self.strict:
                    raise NotRecoverableError(f"{message} (refused: strict=True)")
                # before joining: under -W error the step is refused, not half-enlisted
                _warn(f"{message}; TransactionCoordinator(strict=True) refuses such steps")
            obj = step
        self._join(txid, Mode.SAGA, service_name, obj, factory, params, True)

    def _create(self, factory: str, params: Mapping[str, Any] | None, txid: str) -> object:
        """Build a registry participant -- after checking the transaction, so a bad txid is
        reported before the factory runs (it may connect somewhere)."""
        self._get_live(txid)
        encode_mapping(params, f"params of {factory!r}", self.max_data_bytes)  # they are logged
        return self.registry.create(factory, params)

    def _join(
        self,
        txid: str,
        mode: Mode,
        name: str,
        obj: object,
        factory: str | None,
        params: Mapping[str, Any] | None,
        explicit_name: bool,
    ) -> str:
        if not isinstance(name, str) or not name:
            raise InvalidParticipantError("a participant name is a non-empty string")
        check_text(name, "the participant name")  # it is logged
        tx = self._get_live(txid)
        with tx.lock:
            if tx.phase is not Phase.OPEN:
                raise TransactionStateError(
                    f"transaction {txid} is already committing or rolling back; enlist every "
                    "participant before commit_transaction"
                )
            if tx.mode is not None and tx.mode is not mode:
                raise MixedTransactionError(
                    f"transaction {txid} is a {tx.mode.value} transaction; it cannot also take "
                    f"{'saga steps' if mode is Mode.SAGA else '2PC participants'} -- use one "
                    "transaction per style (docs/protocol.md, Mixed transactions)"
                )
            if any(m.obj is obj for m in tx.members):
                raise DuplicateParticipantError(
                    f"this participant object is already enlisted in {txid} as "
                    f"{next(m.name for m in tx.members if m.obj is obj)!r}"
                )
            if tx.member(name) is not None:
                if explicit_name or mode is Mode.SAGA:
                    raise DuplicateParticipantError(
                        f"transaction {txid} already has a participant named {name!r}; "
                        "participant names are unique within a transaction"
                    )
                base, n = name, 2
                while tx.member(name) is not None:
                    name, n = f"{base}#{n}", n + 1
            tx.mode = mode
            member = Member(name, len(tx.members), obj, factory, dict(params or {}))
            member.abilities = abilities_of(obj)
            if mode is Mode.SAGA:
                member.takes_data = compensation_takes_data(obj)
            tx.members.append(member)
        log.info(
            "txid=%s enlisted %s (%s%s)",
            txid,
            name,
            mode.value,
            f", factory {factory}" if factory else "",
            extra={"txid": txid},
        )
        return name


def _not_recoverable(mode: Mode, name: str, why: str) -> str:
    """What NotRecoverableWarning and NotRecoverableError say (no txid: one warning per
    step and reason, not one per transaction)."""
    if mode is Mode.SAGA:
        return (
            f"saga step {name!r} cannot be rebuilt after a crash: {why}. Register "
            "module-level functions, a registry factory (register_participant(txid, name, "
            "factory=..., params=...)) or registry.register_functions(name, commit, "
            "rollback) to make it recoverable; otherwise, after a crash, compensate it by "
            "hand and record that with `dtc resolve`"
        )
    return (
        f"participant {name!r} cannot be rebuilt after a crash: it is {why}. Enlist it by "
        "the name of a registry factory (registry.register(name, factory); "
        "enlist_participant(txid, name, params=...)) to make it recoverable; otherwise, "
        "after a crash, settle it by hand and record that with `dtc resolve`"
    )


def _warn(message: str) -> None:
    # stacklevel 3: the caller of register_participant
    warnings.warn(message, NotRecoverableWarning, stacklevel=3)
