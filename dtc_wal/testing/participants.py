"""Faulty participant wrappers: make any participant or saga step fail, hang or crawl.

Wrap a :class:`~dtc_wal.Participant` in :class:`FaultyParticipant` (or a
:class:`~dtc_wal.SagaStep` in :class:`FaultyStep`) with one or more faults. Each fault runs
before the wrapped call, in the phases it names (all phases when it names none), and may
raise, block or sleep; when it returns, the wrapped call runs.

>>> from dtc_wal.testing.participants import FailTimes, FaultyParticipant, Slow
>>> class Ok:
...     def prepare(self, txid, data): pass
...     def commit(self, txid): pass
...     def rollback(self, txid): pass
>>> flaky = FaultyParticipant(Ok(), FailTimes(2, phases="commit"), Slow(0.0))
>>> for _ in range(3):
...     try:
...         flaky.commit("tx-1")
...     except ConnectionError as exc:
...         print(exc)
commit of tx-1 failed by fault injection (1 of 2)
commit of tx-1 failed by fault injection (2 of 2)
>>> flaky.calls
[('commit', 'tx-1'), ('commit', 'tx-1'), ('commit', 'tx-1')]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import InvalidOptionError
from ..participant import Participant, SagaStep

__all__ = [
    "FOREVER",
    "AlwaysFail",
    "FailTimes",
    "Fault",
    "FaultyParticipant",
    "FaultyStep",
    "Hang",
    "Slow",
]

FOREVER = -1
"""``FailTimes(FOREVER)`` fails every call."""

PHASES = ("prepare", "commit", "rollback", "action", "compensate")

ErrorFactory = Callable[[str, str], BaseException]


class Fault:
    """Something that happens before a wrapped call. ``phases`` limits it to those phases
    (a name or several); ``None`` means every phase."""

    def __init__(self, phases: str | Iterable[str] | None = None) -> None:
        names = (phases,) if isinstance(phases, str) else phases
        self.phases = None if names is None else frozenset(names)
        unknown = (self.phases or frozenset()) - set(PHASES)
        if unknown:
            raise InvalidOptionError(
                f"unknown phase(s) {sorted(unknown)}; known: {', '.join(PHASES)}"
            )

    def applies(self, phase: str) -> bool:
        return self.phases is None or phase in self.phases

    def before(self, phase: str, txid: str) -> None:
        """Run before the wrapped call in a phase this fault applies to."""


class FailTimes(Fault):
    """Raise the first ``times`` calls (``FOREVER``: every call), then let calls through.

    ``error(phase, txid)`` builds the exception; the default is a ``ConnectionError``,
    which the coordinator treats as transient (retried with backoff). Pass
    ``lambda p, t: VoteNo("no")`` for a refusal that is not retried.
    """

    def __init__(
        self,
        times: int,
        phases: str | Iterable[str] | None = None,
        error: ErrorFactory | None = None,
    ) -> None:
        super().__init__(phases)
        if times < FOREVER:
            raise InvalidOptionError("times is a count >= 0, or FOREVER")
        self.times = times
        self.error = error
        self.failed = 0
        self._lock = threading.Lock()

    def before(self, phase: str, txid: str) -> None:
        with self._lock:
            if self.times != FOREVER and self.failed >= self.times:
                return
            self.failed += 1
            n = self.failed
        if self.error is not None:
            raise self.error(phase, txid)
        of = "always" if self.times == FOREVER else f"{n} of {self.times}"
        raise ConnectionError(f"{phase} of {txid} failed by fault injection ({of})")


class AlwaysFail(FailTimes):
    """Raise on every call (in ``phases``): a participant that never comes back."""

    def __init__(
        self, phases: str | Iterable[str] | None = None, error: ErrorFactory | None = None
    ) -> None:
        super().__init__(FOREVER, phases, error)


class Hang(Fault):
    """Block each call until :meth:`release` (or until ``limit`` seconds, then raise
    ``TimeoutError``): a participant that hangs past the coordinator's timeout.

    Release it at the end of the test -- a hung call holds a pool thread -- for instance
    with ``with Hang("prepare") as hang: ...``, which releases on exit.
    """

    def __init__(self, phases: str | Iterable[str] | None = None, limit: float = 60.0) -> None:
        super().__init__(phases)
        self.limit = limit
        self.released = threading.Event()
        self.entered = threading.Event()
        """Set when the first call starts hanging (wait on it to know the call arrived)."""
        self.hung = 0
        self._lock = threading.Lock()

    def before(self, phase: str, txid: str) -> None:
        with self._lock:
            self.hung += 1
        self.entered.set()
        if not self.released.wait(self.limit):
            raise TimeoutError(f"{phase} of {txid} hung for {self.limit}s (fault injection)")

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> Hang:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class Slow(Fault):
    """Sleep ``seconds`` before each call; ``sleep`` may be a clock's (ManualClock.sleep)."""

    def __init__(
        self,
        seconds: float,
        phases: str | Iterable[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(phases)
        if seconds < 0:
            raise InvalidOptionError("seconds must be >= 0")
        self.seconds = seconds
        self.sleep = sleep

    def before(self, phase: str, txid: str) -> None:
        self.sleep(self.seconds)


class _Faulty:
    def __init__(self, faults: tuple[Fault, ...], name: str | None, inner: object) -> None:
        self.faults = faults
        self.name = name or getattr(inner, "name", None) or type(inner).__name__
        self.calls: list[tuple[str, str]] = []
        """Every call that reached the wrapper, ``(phase, txid)``, failed ones included."""
        self._lock = threading.Lock()

    def _before(self, phase: str, txid: str) -> None:
        with self._lock:
            self.calls.append((phase, txid))
        for fault in self.faults:
            if fault.applies(phase):
                fault.before(phase, txid)


class FaultyParticipant(_Faulty):
    """A 2PC participant that runs ``faults`` before delegating to ``inner``."""

    def __init__(self, inner: Participant, *faults: Fault, name: str | None = None) -> None:
        super().__init__(faults, name, inner)
        self.inner = inner

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self._before("prepare", transaction_id)
        self.inner.prepare(transaction_id, data)

    def commit(self, transaction_id: str) -> None:
        self._before("commit", transaction_id)
        self.inner.commit(transaction_id)

    def rollback(self, transaction_id: str) -> None:
        self._before("rollback", transaction_id)
        self.inner.rollback(transaction_id)


class FaultyStep(_Faulty):
    """A saga step that runs ``faults`` before delegating to ``inner``."""

    def __init__(self, inner: SagaStep, *faults: Fault, name: str | None = None) -> None:
        super().__init__(faults, name, inner)
        self.inner = inner

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self._before("action", transaction_id)
        self.inner.action(transaction_id, data)

    def compensate(self, transaction_id: str) -> None:
        self._before("compensate", transaction_id)
        self.inner.compensate(transaction_id)
