"""The protocol's settings (retry counts and backoff are the driver's: they never change
what the machine decides)."""

from __future__ import annotations

import dataclasses

from .errors import InvalidOptionError

__all__ = ["Options"]


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """``prepare_timeout`` bounds a prepare, a saga action or a one-phase commit;
    ``phase2_timeout`` a commit, rollback or compensation (seconds, retries included; None:
    no limit). ``one_phase``: a lone 2PC member that can commit in one phase does."""

    prepare_timeout: float | None = 5.0
    phase2_timeout: float | None = 30.0
    one_phase: bool = True

    def __post_init__(self) -> None:
        for name in ("prepare_timeout", "phase2_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidOptionError(f"{name} must be positive seconds (or None for no limit)")
