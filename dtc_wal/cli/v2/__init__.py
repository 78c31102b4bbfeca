"""Every ``dtc`` command on a format-2 log, read and written only through
:class:`~dtc_wal.log.TransactionLog` (:class:`~dtc_wal.log.lmdb.LmdbLog`) and, for recovery
and resolution, :class:`~dtc_wal.drivers.Engine`.

:func:`dispatching` is the one place that switches on the format: a command's callback
runs the format-2 function of the same name with the same arguments when its ``LOG``
holds format 2, and its format-1 body otherwise. The format-1 path stays apart, to be
deleted as a whole.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .reading import is_format2

__all__ = ["dispatching", "format2_command"]


def format2_command(name: str) -> Callable[..., None] | None:
    """The format-2 function of command ``name`` (None: the command has no format-2 form)."""
    from . import backup, export, listing, maintenance, repair, show, status

    table: dict[str, Callable[..., None]] = {
        "status": status.status_v2,
        "list": listing.list_v2,
        "show": show.show_v2,
        "recover": maintenance.recover_v2,
        "resolve": maintenance.resolve_v2,
        "compact": maintenance.compact_v2,
        "export": export.export_v2,
        "backup": backup.backup_v2,
        "repair": repair.repair_v2,
    }
    return table.get(name)


def dispatching(format1: Callable[..., Any], format2: Callable[..., None]) -> Callable[..., Any]:
    """A callback running ``format2`` on a format-2 ``log``, ``format1`` otherwise."""

    @functools.wraps(format1)
    def callback(*args: Any, **kwargs: Any) -> Any:
        log = kwargs.get("log")
        if isinstance(log, Path) and is_format2(log):
            return format2(*args, **kwargs)
        return format1(*args, **kwargs)

    return callback
