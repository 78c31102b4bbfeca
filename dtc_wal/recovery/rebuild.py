"""Live participants back from the log: by registry factory, or by import for a saga step
of two module-level functions; and why not, when they cannot be rebuilt.

What the log names (docs/log-format.md, ``enlisted``):

* a factory -- ``registry.create(factory, params)``;
* ``dtc_wal:callables`` -- a saga step whose ``params`` are the import paths of its two
  functions (``{"commit": "module:qualname", "rollback": ...}``): imported, no registry;
* no factory -- an object (2PC) or callables that could not be imported back (saga,
  ``params`` say why): not rebuilt; the member stays pending with the reason, for an
  operator to settle and record with ``dtc resolve``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..abilities import abilities_of
from ..coordinator.live import Member
from ..history import ParticipantView, TransactionView
from ..import_paths import find_module
from ..participant import (
    CALLABLES_FACTORY,
    NOT_RECOVERABLE,
    CallableStep,
    as_participant,
    as_saga_step,
    compensation_takes_data,
)
from ..registry import ParticipantRegistry
from ..states import Mode, ParticipantState

__all__ = ["plan_blocker", "plan_blocker_of", "rebuild_members", "rebuild_object"]


def rebuild_members(view: TransactionView, registry: ParticipantRegistry) -> list[Member]:
    """Live members for ``view``: rebuilt where the log says how (a registry factory, or
    the import paths of a saga step's functions); the others with ``unavailable`` saying
    why not and what to do."""
    members: list[Member] = []
    for p in view.ordered():
        member = Member(
            name=p.name,
            order=p.order,
            obj=None,
            factory=p.factory,
            params=dict(p.params),
            state=p.state,
            attempts=p.attempts,
            last_error=p.last_error,
            prepared_logged=p.state is not ParticipantState.ENLISTED,
        )
        if not p.state.done:
            _rebuild(member, view.mode, registry)
        members.append(member)
    _mark_started(view.mode, members)
    return members


def rebuild_object(
    name: str,
    factory: str | None,
    params: Mapping[str, Any] | None,
    mode: Mode | None,
    registry: ParticipantRegistry,
) -> tuple[object | None, str | None]:
    """One member back from what the log names, by the rules above: ``(object, None)``, or
    ``(None, why not and what to do)``. For drivers that keep members by position."""
    member = Member(name=name, order=0, obj=None, factory=factory, params=dict(params or {}))
    _rebuild(member, mode, registry)
    return member.obj, member.unavailable


def _rebuild(member: Member, mode: Mode | None, registry: ParticipantRegistry) -> None:
    if member.factory is None:
        member.unavailable = _not_rebuildable(member.name, mode, member.params)
        return
    try:
        if member.factory == CALLABLES_FACTORY:
            obj: object = CallableStep.from_log(member.params)
        else:
            obj = registry.create(member.factory, member.params)
        if mode is Mode.SAGA:
            as_saga_step(obj, f"factory {member.factory!r}")
        else:
            as_participant(obj, f"factory {member.factory!r}")
    except Exception as exc:
        member.unavailable = _rebuild_failed(member, exc)
        return
    member.obj = obj
    member.abilities = abilities_of(obj)
    if mode is Mode.SAGA:
        member.takes_data = compensation_takes_data(obj)


def _not_rebuildable(name: str, mode: Mode | None, params: Mapping[str, Any]) -> str:
    """Why a member logged without a factory cannot be rebuilt, and what to do."""
    if mode is not Mode.SAGA:
        return (
            f"{name} was enlisted as an object, not through a registry factory, so it "
            "cannot be rebuilt after a restart; settle it by hand and record that with "
            "`dtc resolve`"
        )
    why = params.get(NOT_RECOVERABLE)
    what = (
        f"callables recovery cannot import ({why})"
        if isinstance(why, str)
        else "callables the log holds no import paths for (logged by an older dtc-wal)"
    )
    return (
        f"step {name!r} was registered with {what}; it cannot be rebuilt: compensate by "
        "hand and record that with `dtc resolve`, and register module-level functions or "
        "a factory to make it recoverable"
    )


def _rebuild_failed(member: Member, exc: Exception) -> str:
    if member.factory == CALLABLES_FACTORY:
        paths = ", ".join(str(v) for v in member.params.values())
        return (
            f"cannot rebuild step {member.name!r} by importing {paths}: "
            f"{type(exc).__name__}: {exc}; make the module importable where recovery runs "
            "(install it, or add its directory to PYTHONPATH) and recover again, or "
            "compensate by hand and record that with `dtc resolve`"
        )
    return (
        f"cannot rebuild {member.name} with factory {member.factory!r}: {type(exc).__name__}: {exc}"
    )


def plan_blocker(
    participant: ParticipantView, mode: Mode | None, registry: ParticipantRegistry
) -> str | None:
    """Why recovery could not rebuild ``participant``, seen without calling any factory or
    importing any module (its module is only looked up); None when it could."""
    return plan_blocker_of(
        participant.name, participant.factory, participant.params, mode, registry
    )


def plan_blocker_of(
    name: str,
    factory: str | None,
    params: Mapping[str, Any] | None,
    mode: Mode | None,
    registry: ParticipantRegistry,
) -> str | None:
    """:func:`plan_blocker` for a member named by what the log holds, whatever its format."""
    params = params or {}
    if factory is None:
        if mode is Mode.SAGA:
            return _not_rebuildable(name, mode, params)
        return "not recoverable (enlisted as an object)"
    if factory == CALLABLES_FACTORY:
        for path in params.values():
            missing = find_module(str(path).partition(":")[0])
            if missing is not None:
                return f"cannot import {path}: {missing}"
        return None
    if factory not in registry:
        return f"factory {factory!r} is not in the registry"
    return None


def _mark_started(mode: Mode | None, members: list[Member]) -> None:
    """Saga: the first step without a PREPARED record may have run; mark it to compensate."""
    if mode is not Mode.SAGA:
        return
    for member in members:
        if member.state is ParticipantState.ENLISTED:
            member.started = True
            return
