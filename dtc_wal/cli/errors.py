"""Exit codes, and library errors turned into one-line ``Error: ...`` messages.

| code | meaning                                                                  |
|------|--------------------------------------------------------------------------|
| 0    | success                                                                  |
| 1    | an error: no log, unknown transaction, damaged log, refused resolution   |
| 2    | bad usage: unknown option, bad ``--older-than``, bad ``--registry``      |
| 3    | the log is held by a live coordinator (commands that write)              |
| 4    | the command ran and found something that needs attention: ``verify``     |
|      | found problems, ``recover`` left participants in doubt (``--dry-run``:   |
|      | would leave them), damaged records                                       |

With the top-level ``--debug`` flag nothing is translated: the traceback is shown.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
import lmdb

from ..errors import DtcError, LogLockedError

__all__ = [
    "EXIT_ATTENTION",
    "EXIT_ERROR",
    "EXIT_LOCKED",
    "EXIT_USAGE",
    "CliError",
    "DtcGroup",
    "one_line",
    "translate",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_ATTENTION = 4


class CliError(click.ClickException):
    """An error shown as ``Error: message`` on stderr, exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        # click >= 8.2 types exit_code as a ClassVar; click reads it from the instance.
        setattr(self, "exit_code", exit_code)  # noqa: B010


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (library messages already say what to do)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def translate(exc: BaseException) -> CliError | None:
    """The CLI error for an expected failure, or None for a bug (keep its traceback)."""
    if isinstance(exc, LogLockedError):
        return CliError(one_line(exc), EXIT_LOCKED)
    if isinstance(exc, DtcError):
        return CliError(one_line(exc))
    if isinstance(exc, OSError):
        return CliError(one_line(exc))
    if isinstance(exc, lmdb.Error):
        return CliError(f"LMDB: {one_line(exc)}")
    return None


class DtcGroup(click.Group):
    """The ``dtc`` group: translates library errors unless ``--debug`` was given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # `dtc export LOG | head`: the reader left; stop quietly, as cat does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            error = translate(exc)
            if error is None or ctx.params.get("debug"):
                raise
            raise error from exc
