"""Durations on the command line: ``30s``, ``10m``, ``2h``, ``3d``, ``1w``, ``1h30m``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidOptionError

__all__ = ["DURATION", "Duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``, a sequence of number+unit parts (s, m, h, d, w).

    >>> parse_duration("1h30m")
    5400.0
    """
    spec = text.strip().lower()
    pos, total = 0, 0.0
    while pos < len(spec):
        match = _PART.match(spec, pos)
        if match is None:
            raise InvalidOptionError(
                f"{text!r} is not a duration: use a number and a unit, e.g. 30s, 10m, 2h, "
                "3d, 1w or 1h30m"
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not spec:
        raise InvalidOptionError("empty duration: use e.g. 30s, 10m, 2h, 3d or 1w")
    return total


if TYPE_CHECKING:  # generic in click's stubs from 8.2; plain at runtime in 8.1
    _ParamType = click.ParamType[float]
else:
    _ParamType = click.ParamType


class Duration(_ParamType):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()
