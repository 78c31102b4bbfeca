"""The engine's settings in one place: the protocol's, the call policy's, the pool's."""

from __future__ import annotations

import dataclasses

from .. import options
from ..log_values import DEFAULT_MAX_DATA_BYTES, check_max_data_bytes
from ..protocol import Options as ProtocolOptions
from .calls import CallPolicy

__all__ = ["EngineOptions"]


@dataclasses.dataclass(frozen=True, slots=True)
class EngineOptions:
    """``protocol``: timeouts and one-phase commit; ``policy``: retries and backoff;
    ``max_workers``: pool threads for parallel calls; ``inline_threshold``: calls of a kind
    consistently faster than this run in the caller's thread (None: never);
    ``max_data_bytes``: the largest encoded data or params (None: no limit);
    ``recovery_workers``: transactions a recovery pass drives at once."""

    protocol: ProtocolOptions = dataclasses.field(default_factory=ProtocolOptions)
    policy: CallPolicy = dataclasses.field(default_factory=CallPolicy)
    max_workers: int = 32
    inline_threshold: float | None = 0.0005
    max_data_bytes: int | None = DEFAULT_MAX_DATA_BYTES
    recovery_workers: int = 1
    """Transactions one recovery pass drives at once."""

    def __post_init__(self) -> None:
        options.count("recovery_workers", self.recovery_workers, 1)
        options.count("max_workers", self.max_workers, 1)
        options.non_negative("inline_threshold", self.inline_threshold, off=True)
        check_max_data_bytes(self.max_data_bytes)
