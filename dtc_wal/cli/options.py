"""Arguments and options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

__all__ = ["json_option", "log_argument"]

F = TypeVar("F", bound=Callable[..., object])


def log_argument(function: F) -> F:
    """The ``LOG`` argument: the log directory a coordinator was opened on."""
    return click.argument("log", type=click.Path(file_okay=False, path_type=Path))(function)


def json_option(function: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of text (for scripts)."
    )(function)
