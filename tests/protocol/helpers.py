"""Small helpers for driving a machine by hand in unit tests."""

from __future__ import annotations

from typing import Any, TypeVar

from dtc_wal.protocol import (
    Append,
    Call,
    Command,
    Decision,
    Finish,
    Machine,
    MemberSpec,
    Mode,
    Options,
    Record,
)

T = TypeVar("T")


def machine(
    mode: Mode = Mode.TWO_PHASE, n: int = 3, options: Options | None = None, **abilities: Any
) -> Machine:
    """A machine begun at now=0 with ``n`` members m0, m1, ... (factory "f")."""
    m = Machine("tx", 0.0, options)
    for i in range(n):
        m.enlist(MemberSpec(f"m{i}", "f", {"i": i}), mode, **abilities)
    return m


def kinds(commands: list[Command]) -> list[str]:
    return [type(c).__name__ for c in commands]


def of(commands: list[Command], cls: type[T]) -> list[T]:
    return [c for c in commands if isinstance(c, cls)]


def calls(commands: list[Command]) -> list[tuple[int, str]]:
    return [(c.member, c.op.value) for c in of(commands, Call)]


def appended(commands: list[Command]) -> list[tuple[list[str], bool]]:
    return [([type(r).__name__ for r in a.records], a.durable) for a in of(commands, Append)]


def records(commands: list[Command]) -> list[Record]:
    return [r for a in of(commands, Append) for r in a.records]


def the(commands: list[Command], cls: type[T]) -> T:
    (found,) = of(commands, cls)
    return found


def decision(commands: list[Command]) -> Decision:
    return the(commands, Decision)


def finish(commands: list[Command]) -> Finish:
    return the(commands, Finish)
