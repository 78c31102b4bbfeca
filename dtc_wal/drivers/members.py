"""The driver's side of a member: the live object at a machine's member position, what it
can do (found once, when it joins or is rebuilt), and how each :class:`~dtc_wal.protocol.Op`
is called on it. The machine only ever sees positions and names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..abilities import NONE as NO_ABILITIES
from ..abilities import Abilities, abilities_of
from ..participant import compensation_takes_data
from ..protocol import Mode, Op

__all__ = ["LiveMember", "abilities", "bind", "call_once"]


def abilities(obj: object, mode: Mode) -> Abilities:
    """What ``obj`` declares (:mod:`dtc_wal.abilities`); looked up once, at enlist or
    rebuild, never per call. Saga steps have none."""
    return NO_ABILITIES if mode is Mode.SAGA else abilities_of(obj)


@dataclasses.dataclass(slots=True)
class LiveMember:
    """One member as the driver holds it. ``obj`` is None when recovery could not rebuild
    it (``unavailable`` says why and what to do): it is never called, and its calls are
    reported to the machine as unavailable."""

    name: str
    obj: object | None
    can: Abilities = NO_ABILITIES
    takes_data: bool = False
    """A saga step whose ``compensate`` takes ``(txid, data)``."""
    unavailable: str | None = None
    kind: str = ""
    """What the inline tracker knows it by (its class)."""

    @classmethod
    def of(cls, name: str, obj: object, mode: Mode) -> LiveMember:
        takes = mode is Mode.SAGA and compensation_takes_data(obj)
        return cls(name, obj, abilities(obj, mode), takes, None, type(obj).__qualname__)


def bind(member: LiveMember, op: Op, txid: str, data: Mapping[str, Any]) -> Callable[[], object]:
    """The call ``op`` makes on ``member`` (its object must exist)."""
    obj: Any = member.obj
    if op is Op.PREPARE:
        return lambda: obj.prepare(txid, data)
    if op is Op.COMMIT:
        return lambda: obj.commit(txid)
    if op is Op.ROLLBACK:
        return lambda: obj.rollback(txid)
    if op is Op.ACTION:
        return lambda: obj.action(txid, data)
    if op is Op.COMPENSATE:
        if member.takes_data:
            return lambda: obj.compensate(txid, data)
        return lambda: obj.compensate(txid)
    return lambda: obj.commit_one_phase(txid, data)


def call_once(member: LiveMember, op: Op, txid: str, data: Mapping[str, Any]) -> object:
    """Make the call ``op`` on ``member`` now (what ``bind(...)()`` does, without building
    the closure: the first attempt of every call goes through here)."""
    obj: Any = member.obj
    if op is Op.PREPARE:
        return obj.prepare(txid, data)
    if op is Op.COMMIT:
        return obj.commit(txid)
    if op is Op.ROLLBACK:
        return obj.rollback(txid)
    if op is Op.ACTION:
        return obj.action(txid, data)
    if op is Op.COMPENSATE:
        if member.takes_data:
            return obj.compensate(txid, data)
        return obj.compensate(txid)
    return obj.commit_one_phase(txid, data)
