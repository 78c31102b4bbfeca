"""Deprecated: moved to :mod:`dtc_wal.testing` (this alias goes in the next release).

Importing it warns and re-exports :mod:`dtc_wal.testing`, and each old submodule
(``dtc_wal.fault_injection.harness`` ...) is the same module as ``dtc_wal.testing.harness``.
Crash points are no longer armed from ``DTC_CRASH_AT``: call :func:`dtc_wal.testing.arm`.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from .. import testing as _testing
from ..testing import *  # noqa: F403 -- the alias re-exports the whole public surface

__all__ = list(_testing.__all__)

warnings.warn(
    "dtc_wal.fault_injection is deprecated and will be removed in the next release: import "
    "dtc_wal.testing instead (crash points are armed by dtc_wal.testing.arm, no longer by "
    "DTC_CRASH_AT)",
    DeprecationWarning,
    stacklevel=2,
)

SUBMODULES = (
    "checks",
    "durable",
    "durable_participants",
    "durable_reader",
    "durable_registry",
    "durable_resource",
    "durable_store",
    "harness",
    "participants",
    "points",
    "workload",
)
for _name in SUBMODULES:
    _module = importlib.import_module(f"dtc_wal.testing.{_name}")
    sys.modules[f"{__name__}.{_name}"] = _module
    globals()[_name] = _module
