"""Checks for option values: a bad one raises :class:`~dtc_wal.errors.InvalidOptionError`
naming the option, what it accepts and what it got -- before anything is opened, so a
refused option leaves nothing behind.

>>> count("max_retries", -1)
Traceback (most recent call last):
...
dtc_wal.errors.InvalidOptionError: max_retries must be an int >= 0, not -1
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

from .errors import InvalidOptionError

__all__ = ["count", "flag", "non_negative", "one_of", "positive"]

T = TypeVar("T")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _off(off: bool) -> str:
    return " (or None to switch it off)" if off else ""


def positive(option: str, value: object, *, off: bool = False, unit: str = "seconds") -> None:
    """``value`` is a number > 0 (or None when ``off``)."""
    if value is None and off:
        return
    if not _number(value) or value <= 0:  # type: ignore[operator]
        raise InvalidOptionError(
            f"{option} must be a number of {unit} greater than 0{_off(off)}, not {value!r}"
        )


def non_negative(option: str, value: object, *, off: bool = False, unit: str = "seconds") -> None:
    """``value`` is a number >= 0 (or None when ``off``)."""
    if value is None and off:
        return
    if not _number(value) or value < 0:  # type: ignore[operator]
        raise InvalidOptionError(
            f"{option} must be a number of {unit}, 0 or more{_off(off)}, not {value!r}"
        )


def count(option: str, value: object, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum`` (bool is not a count)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidOptionError(f"{option} must be an int >= {minimum}, not {value!r}")
    return value


def flag(option: str, value: object) -> bool:
    """``value`` is True or False (not merely truthy: ``sync="no"`` would mean yes)."""
    if not isinstance(value, bool):
        raise InvalidOptionError(f"{option} must be True or False, not {value!r}")
    return value


def one_of(option: str, value: T, choices: Collection[T]) -> T:
    """``value`` is one of ``choices``."""
    if value not in choices:
        listed = " or ".join(repr(c) for c in choices)
        raise InvalidOptionError(f"{option} must be {listed}, not {value!r}")
    return value
