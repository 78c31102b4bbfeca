"""What a live coordinator has done, for monitoring: :meth:`TransactionCoordinator.stats`.

Counters start at zero when the coordinator opens (they are not in the log); the gauges
(``live``, ``unfinished``, ``in_doubt``, the log's size) are read when asked. Export them
to your metrics system from a timer; one call costs a few microseconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..drivers.counters import Counters

__all__ = ["CoordinatorStats", "Counters"]


@dataclass(frozen=True)
class CoordinatorStats:
    """A snapshot of one coordinator. Counters count since it opened."""

    begun: int
    """Transactions begun by callers."""
    committed: int
    """Commit decisions taken for callers (logged, or a one-phase commit done)."""
    aborted: int
    """Rollback decisions taken for callers: a no vote, a timeout, a failed step,
    ``rollback_transaction``, the zombie reaper."""
    incomplete: int
    """Commits that raised :class:`~dtc_wal.CommitIncompleteError` (decided, left to
    recovery because a participant had not acknowledged)."""
    zombies_reaped: int
    """Open transactions the reaper rolled back."""
    recovery_passes: int
    """Recovery passes run (on open, in the background, ``recover_now``)."""
    recovered: int
    """Transactions recovery passes drove to completion."""
    live: int
    """Transactions callers are driving now (begun, their commit or rollback call not
    returned yet)."""
    unfinished: int
    """Transactions in the log that still need a participant: active ones (live ones
    included) and decided ones not every participant acknowledged. A transaction every
    participant acknowledged is finished at once, also while its lazy COMPLETED record
    (docs/protocol.md) is still queued."""
    in_doubt: int
    """Unfinished transactions recovery has tried and not finished (never more than
    ``unfinished``); they are retried with backoff. Non-zero for long means a participant
    needs attention (``in_doubt()``)."""
    log_records: int
    """Log records written since open."""
    log_batches: int
    """Log write transactions (each one LMDB commit) since open."""
    log_syncs: int
    """Synced LMDB commits since open."""
    log_bytes_used: int
    """Bytes of the LMDB map in use."""
    log_map_size: int
    """Current LMDB map size in bytes (it grows up to ``max_map_size``)."""
    log_max_map_size: int
    """The limit the map grows to; alert well before ``log_bytes_used`` gets there (then
    writes fail with :class:`~dtc_wal.errors.LogFullError`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
