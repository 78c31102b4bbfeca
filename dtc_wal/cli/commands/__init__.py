"""What every ``dtc`` command does, read and written only through
:class:`~dtc_wal.log.TransactionLog` (:class:`~dtc_wal.log.lmdb.LmdbLog`) and, for recovery
and resolution, :class:`~dtc_wal.drivers.Engine`. The click commands (their options and
help) are in the modules above; each calls its ``run_<command>`` function here.

:func:`refusing_format1` is the one place that looks at the format: a format-1 log (written
before the redesign) gets an error naming ``dtc upgrade``, the only command that reads it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import LogError
from ...log.lmdb import log_format
from ..errors import CliError

__all__ = ["refusing_format1"]


def refusing_format1(command: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback``, refusing a format-1 ``log`` with what to do instead."""

    @functools.wraps(callback)
    def checked(*args: Any, **kwargs: Any) -> Any:
        log = kwargs.get("log")
        if isinstance(log, Path):
            try:
                found = log_format(log)
            except LogError:
                found = None  # no log, or one the command explains better
            if found == 1:
                raise CliError(
                    f"the log at {log} is in format 1, written by a dtc-wal before the "
                    f"redesign; `dtc {command}` reads format 2 only. Convert it with `dtc "
                    f"upgrade {log} --in-place` (the original is kept beside it; "
                    "`--dry-run` first shows what would change)"
                )
        return callback(*args, **kwargs)

    return checked
