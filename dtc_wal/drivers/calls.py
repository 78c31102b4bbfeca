"""Participant calls: retries with exponential backoff and jitter (tenacity), timeouts.

A call is tried once directly; only when it raises does tenacity take over for the
remaining ``max_retries`` attempts, so the common path pays nothing for the retry machinery.
Every sleep goes through the injected clock (instant under a ManualClock).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import tenacity

from .. import options
from ..clock import Clock
from ..errors import InvalidOptionError, ParticipantTimeoutError, TransientError, VoteNo
from ..log_values import loggable_text
from .inline import InlineTracker

__all__ = ["CallPolicy", "CallResult", "run_parallel"]

log = logging.getLogger("dtc_wal.coordinator")
T = TypeVar("T")

DEFAULT_TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
)


@dataclasses.dataclass(slots=True)
class CallResult:
    """How one participant call ended: ``ok``, or the last error after ``attempts`` tries."""

    name: str
    ok: bool
    attempts: int
    error: BaseException | None = None
    value: object = None  # what the call returned (a prepare may vote READ_ONLY)

    @property
    def error_text(self) -> str:
        if self.error is None:
            return ""
        # Logged as the reason or a FAILED record: it must encode whatever it holds.
        return loggable_text(f"{type(self.error).__name__}: {self.error}")


@dataclasses.dataclass(frozen=True, slots=True)
class CallPolicy:
    """Retry and timeout settings for participant calls."""

    max_retries: int = 3
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    jitter: float = 0.05
    transient: tuple[type[BaseException], ...] = DEFAULT_TRANSIENT

    def __post_init__(self) -> None:
        options.count("max_retries", self.max_retries)
        for option in ("backoff_initial", "backoff_max", "jitter"):
            options.non_negative(option, getattr(self, option))
        transient = self.transient
        if not isinstance(transient, tuple) or not all(
            isinstance(c, type) and issubclass(c, BaseException) for c in transient
        ):
            raise InvalidOptionError(
                f"transient_errors must be a tuple of exception classes, not {transient!r}"
            )

    def call(
        self,
        fn: Callable[[], object],
        *,
        name: str,
        txid: str,
        phase: str,
        clock: Clock,
        retry_any: bool,
        cancelled: threading.Event | None = None,
    ) -> CallResult:
        """Run ``fn``; retry transient errors (any error when ``retry_any``) with backoff.

        ``VoteNo`` is never retried. ``cancelled`` stops further attempts (set on timeout).
        """
        try:
            return CallResult(name, True, 1, value=fn())
        except Exception as first:
            if not self._retryable(first, retry_any) or self.max_retries == 0:
                self._log_failure(txid, name, phase, first, 1)
                return CallResult(name, False, 1, first)
            log.warning(
                "txid=%s %s %s failed (attempt 1, will retry): %s",
                txid,
                phase,
                name,
                first,
                extra={"txid": txid},
            )

        attempts = 1

        class StopWhenCancelled(tenacity.stop.stop_base):
            def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
                return cancelled is not None and cancelled.is_set()

        def before_sleep(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            err = outcome.exception() if outcome is not None else None
            log.warning(
                "txid=%s %s %s failed (attempt %d, will retry): %s",
                txid,
                phase,
                name,
                state.attempt_number + 1,
                err,
                extra={"txid": txid},
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries) | StopWhenCancelled(),
            # The first retry waits `backoff_initial` (below); tenacity's waits then double.
            wait=tenacity.wait_exponential(
                multiplier=self.backoff_initial * 2, max=self.backoff_max
            )
            + tenacity.wait_random(0, self.jitter),
            retry=tenacity.retry_if_exception(lambda e: self._retryable(e, retry_any)),
            sleep=clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        clock.sleep(min(self.backoff_initial, self.backoff_max) + random.uniform(0, self.jitter))
        value: object = None
        try:
            for attempt in retrying:
                with attempt:
                    attempts = 1 + attempt.retry_state.attempt_number
                    value = fn()
            return CallResult(name, True, attempts, value=value)
        except Exception as exc:
            self._log_failure(txid, name, phase, exc, attempts)
            return CallResult(name, False, attempts, exc)

    def _retryable(self, exc: BaseException, retry_any: bool) -> bool:
        if isinstance(exc, VoteNo):
            return False
        return retry_any or isinstance(exc, self.transient)

    @staticmethod
    def _log_failure(txid: str, name: str, phase: str, exc: BaseException, n: int) -> None:
        log.error(
            "txid=%s %s %s failed after %d attempt(s): %s: %s",
            txid,
            phase,
            name,
            n,
            type(exc).__name__,
            exc,
            extra={"txid": txid},
        )


def run_parallel(
    pool: cf.Executor,
    calls: Sequence[tuple[str, Callable[[threading.Event], CallResult]]],
    timeout: float | None,
    txid: str,
    phase: str,
    on_result: Callable[[CallResult], None] | None = None,
    tracker: InlineTracker | None = None,
    keys: Sequence[Hashable] | None = None,
) -> list[CallResult]:
    """Run named calls at once; one that is not done by ``timeout`` counts as failed.

    Results come back in the order of ``calls``; ``on_result`` sees each as it arrives, in
    the calling thread. A timed-out call is told to stop retrying; a call already inside the
    participant cannot be interrupted (Python threads cannot be killed) and finishes in the
    background. With a ``tracker``, calls whose ``keys`` it knows to be fast run inline in
    the calling thread (no pool hand-off), and every call's duration is recorded.
    """
    n = len(calls)
    start = time.monotonic()
    measured = [
        _measured(fn, tracker, keys[i]) if tracker and keys else fn
        for i, (_, fn) in enumerate(calls)
    ]
    inline = [
        (n == 1 and timeout is None)
        or (tracker is not None and keys is not None and tracker.is_fast(keys[i]))
        for i in range(n)
    ]
    # Inline calls cannot be cancelled (they run here, to the end): they share a flag
    # that is never set; each pooled call gets its own.
    flags = [_NEVER if inline[i] else threading.Event() for i in range(n)]
    futures = {pool.submit(measured[i], flags[i]): i for i in range(n) if not inline[i]}
    results: list[CallResult | None] = [None] * n
    for i in range(n):
        if inline[i]:
            results[i] = result = measured[i](flags[i])
            if on_result is not None:
                on_result(result)
    if futures:
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        try:
            for future in cf.as_completed(futures, timeout=remaining):
                result = future.result()
                results[futures[future]] = result
                if on_result is not None:
                    on_result(result)
        except cf.TimeoutError:
            pass
    out: list[CallResult] = []
    for i, (name, _) in enumerate(calls):
        done = results[i]
        if done is not None:
            out.append(done)
            continue
        flags[i].set()
        log.error(
            "txid=%s %s %s timed out after %.3gs",
            txid,
            phase,
            name,
            timeout,
            extra={"txid": txid},
        )
        err = ParticipantTimeoutError(
            f"{phase} of {name} in transaction {txid} did not return within {timeout}s"
        )
        out.append(CallResult(name, False, 1, err))
    return out


_NEVER = threading.Event()


def _measured(
    fn: Callable[[threading.Event], CallResult], tracker: InlineTracker, key: Hashable
) -> Callable[[threading.Event], CallResult]:
    def run(flag: threading.Event) -> CallResult:
        t0 = time.perf_counter()
        try:
            return fn(flag)
        finally:
            tracker.record(key, time.perf_counter() - t0)

    return run
