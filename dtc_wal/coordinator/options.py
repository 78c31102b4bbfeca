"""One options dataclass for a coordinator: every setting, its default and its check.

``TransactionCoordinator(path, options=CoordinatorOptions(...))`` and the keyword form
``TransactionCoordinator(path, prepare_timeout=2.0)`` are the same thing: keywords override
the given (or default) options. A bad value raises
:class:`~dtc_wal.errors.InvalidOptionError` naming the option, before anything opens.

>>> CoordinatorOptions(prepare_timeout=2.0).phase2_timeout
30.0
>>> CoordinatorOptions(max_workers=0)
Traceback (most recent call last):
...
dtc_wal.errors.InvalidOptionError: max_workers must be an int >= 1, not 0
"""

from __future__ import annotations

import dataclasses
from typing import TypedDict

from .. import options
from ..drivers.calls import DEFAULT_TRANSIENT, CallPolicy
from ..errors import InvalidOptionError
from ..log.lmdb.store import MIB
from ..log_values import DEFAULT_MAX_DATA_BYTES, check_max_data_bytes

__all__ = ["LOG_FORMAT", "CoordinatorOptions", "OptionsKwargs"]

LOG_FORMAT = 2
"""The format this version writes. A format-1 log (written before the redesign) is refused
at open; ``dtc upgrade`` converts it, keeping the original."""


@dataclasses.dataclass(frozen=True, slots=True)
class CoordinatorOptions:
    """Every coordinator setting (the ``TransactionCoordinator`` docstring says what each
    does); frozen, so one value can configure several coordinators."""

    prepare_timeout: float | None = 5.0
    phase2_timeout: float | None = 30.0
    max_retries: int = 3
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    jitter: float = 0.05
    transient_errors: tuple[type[BaseException], ...] = DEFAULT_TRANSIENT
    max_workers: int = 32
    map_size: int = 64 * MIB
    max_map_size: int = 8 * 1024 * MIB
    sync: bool = True
    log_writer: str = "caller"
    recover: bool = True
    recovery_interval: float | None = 5.0
    recovery_backoff_max: float = 300.0
    recovery_workers: int = 8
    zombie_timeout: float | None = 300.0
    inline_threshold: float | None = 0.0005
    one_phase: bool = True
    max_data_bytes: int | None = DEFAULT_MAX_DATA_BYTES
    strict: bool = False
    log_format: int | None = None

    def __post_init__(self) -> None:
        check_max_data_bytes(self.max_data_bytes)
        for option in ("prepare_timeout", "phase2_timeout", "recovery_interval", "zombie_timeout"):
            options.positive(option, getattr(self, option), off=True)
        options.positive("recovery_backoff_max", self.recovery_backoff_max)
        options.non_negative("inline_threshold", self.inline_threshold, off=True)
        for option, minimum in (("max_workers", 1), ("map_size", 1), ("max_map_size", 1)):
            options.count(option, getattr(self, option), minimum)
        options.count("recovery_workers", self.recovery_workers, 1)
        options.one_of("log_writer", self.log_writer, ("caller", "thread"))
        fmt = self.log_format
        if fmt is not None and (isinstance(fmt, bool) or fmt not in (1, 2)):
            raise InvalidOptionError(
                f"log_format must be {LOG_FORMAT} (the format this version writes) or "
                f"None, not {fmt!r}"
            )
        for option in ("sync", "recover", "one_phase", "strict"):
            options.flag(option, getattr(self, option))
        self.policy()  # the retry settings are checked by the policy they make

    def policy(self) -> CallPolicy:
        """The retry policy these options describe."""
        return CallPolicy(
            max_retries=self.max_retries,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
            jitter=self.jitter,
            transient=self.transient_errors,
        )


class OptionsKwargs(TypedDict, total=False):
    """The keyword form of :class:`CoordinatorOptions` (for typing ``**options``)."""

    prepare_timeout: float | None
    phase2_timeout: float | None
    max_retries: int
    backoff_initial: float
    backoff_max: float
    jitter: float
    transient_errors: tuple[type[BaseException], ...]
    max_workers: int
    map_size: int
    max_map_size: int
    sync: bool
    log_writer: str
    recover: bool
    recovery_interval: float | None
    recovery_backoff_max: float
    recovery_workers: int
    zombie_timeout: float | None
    inline_threshold: float | None
    one_phase: bool
    max_data_bytes: int | None
    strict: bool
    log_format: int | None
