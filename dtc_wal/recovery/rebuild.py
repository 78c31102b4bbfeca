"""Live participants back from the log: by registry factory, or by import for a saga step
of two module-level functions; and why not, when they cannot be rebuilt.

What the log names (docs/log-format.md, the members of ``Opened``):

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

from ..import_paths import find_module
from ..participant import (
    CALLABLES_FACTORY,
    NOT_RECOVERABLE,
    CallableStep,
    as_participant,
    as_saga_step,
)
from ..registry import ParticipantRegistry
from ..states import Mode

__all__ = ["plan_blocker_of", "rebuild_object"]


def rebuild_object(
    name: str,
    factory: str | None,
    params: Mapping[str, Any] | None,
    mode: Mode | None,
    registry: ParticipantRegistry,
) -> tuple[object | None, str | None]:
    """One member back from what the log names: ``(object, None)``, or ``(None, why not and
    what to do)``."""
    params = dict(params or {})
    if factory is None:
        return None, _not_rebuildable(name, mode, params)
    try:
        if factory == CALLABLES_FACTORY:
            obj: object = CallableStep.from_log(params)
        else:
            obj = registry.create(factory, params)
        if mode is Mode.SAGA:
            as_saga_step(obj, f"factory {factory!r}")
        else:
            as_participant(obj, f"factory {factory!r}")
    except Exception as exc:
        return None, _rebuild_failed(name, factory, params, exc)
    return obj, None


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


def _rebuild_failed(name: str, factory: str, params: Mapping[str, Any], exc: Exception) -> str:
    if factory == CALLABLES_FACTORY:
        paths = ", ".join(str(v) for v in params.values())
        return (
            f"cannot rebuild step {name!r} by importing {paths}: "
            f"{type(exc).__name__}: {exc}; make the module importable where recovery runs "
            "(install it, or add its directory to PYTHONPATH) and recover again, or "
            "compensate by hand and record that with `dtc resolve`"
        )
    return f"cannot rebuild {name} with factory {factory!r}: {type(exc).__name__}: {exc}"


def plan_blocker_of(
    name: str,
    factory: str | None,
    params: Mapping[str, Any] | None,
    mode: Mode | None,
    registry: ParticipantRegistry,
) -> str | None:
    """Why recovery could not rebuild this member, seen without calling any factory or
    importing any module (its module is only looked up); None when it could."""
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
