"""The LMDB backend of the transaction log, in log format 2 (docs/log-format.md).

``codec`` (framing and record layouts), ``store`` (environment, tables, map growth),
``writer`` (group commit's batch writes), ``reader`` (damage-isolating reads),
``compact`` (deletion by age) and ``backend`` (:class:`LmdbLog`).
"""

from __future__ import annotations

from .backend import LmdbLog
from .format import log_format

__all__ = ["LmdbLog", "log_format"]
