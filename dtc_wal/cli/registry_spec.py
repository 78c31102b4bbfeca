"""``--registry module:attribute``: import the application's participant registry."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidOptionError
from ..registry import ParticipantRegistry

__all__ = ["RegistrySpec", "load_registry"]

EXAMPLE = "e.g. myapp.participants:registry"


def load_registry(spec: str) -> ParticipantRegistry:
    """Import ``module:attribute`` (the attribute may be dotted, or a function returning
    the registry). The current directory is importable, as with ``python -m``."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidOptionError(f"{spec!r} is not MODULE:ATTRIBUTE ({EXAMPLE})")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidOptionError(
            f"cannot import {module_name!r} ({type(exc).__name__}: {exc}); run dtc from the "
            "directory that holds it, or add that directory to PYTHONPATH"
        ) from exc
    except Exception as exc:
        raise InvalidOptionError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidOptionError(
                f"module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if callable(obj) and not isinstance(obj, ParticipantRegistry):
        obj = obj()
    if not isinstance(obj, ParticipantRegistry):
        raise InvalidOptionError(
            f"{spec} is a {type(obj).__name__}, not a dtc_wal.ParticipantRegistry (or a "
            "function returning one)"
        )
    return obj


if TYPE_CHECKING:  # generic in click's stubs from 8.2; plain at runtime in 8.1
    _ParamType = click.ParamType[ParticipantRegistry]
else:
    _ParamType = click.ParamType


class RegistrySpec(_ParamType):
    name = "module:attribute"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> ParticipantRegistry:
        if isinstance(value, ParticipantRegistry):
            return value
        try:
            return load_registry(str(value))
        except ValueError as exc:
            if ctx is not None and ctx.find_root().params.get("debug"):
                raise
            self.fail(str(exc), param, ctx)
