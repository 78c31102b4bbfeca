"""Pieces every protocol step uses: crash points, bound participant calls, the driver's
state and its record/call helpers (:class:`DriverBase`)."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from .. import _crash_hooks as points
from ..clock import Clock
from ..drivers.calls import CallPolicy, CallResult
from ..drivers.inline import InlineTracker
from ..records import LogRecord
from ..states import RecordType
from ..wal.writer import WriteAheadLog
from .live import LiveTransaction, Member

__all__ = ["DriverBase", "call_keys", "crash"]

log = logging.getLogger("dtc_wal.coordinator")


def crash(name: str) -> None:
    if points.ARMED:
        points.hit(name)


@dataclasses.dataclass
class DriverBase:
    wal: WriteAheadLog
    policy: CallPolicy
    pool: cf.Executor
    clock: Clock
    prepare_timeout: float | None
    phase2_timeout: float | None
    inline: InlineTracker | None = None

    # -- helpers -----------------------------------------------------------------------

    def record(self, kind: RecordType, tx: LiveTransaction, **fields: Any) -> LogRecord:
        return LogRecord(kind, tx.txid, self.clock.now(), **fields)

    def log_opening(self, tx: LiveTransaction) -> None:
        """Make BEGUN + ENLISTED durable (once) before anything is sent."""
        if not tx.logged:
            self.wal.append(tx.opening_records(self.clock.now()))
            tx.logged = True
            # BEGUN and ENLISTED share one sync, so these two points are the same moment.
            crash("begin.after-log")
            crash("enlist.after-log")

    def _call(
        self,
        tx: LiveTransaction,
        member: Member,
        phase: str,
        fn: Callable[[], object],
        retry_any: bool,
    ) -> Callable[[threading.Event], CallResult]:
        def run(cancelled: threading.Event) -> CallResult:
            log.debug("txid=%s %s -> %s", tx.txid, phase, member.name, extra={"txid": tx.txid})
            return self.policy.call(
                fn,
                name=member.name,
                txid=tx.txid,
                phase=phase,
                clock=self.clock,
                retry_any=retry_any,
                cancelled=cancelled,
            )

        return run


def call_keys(phase: str, members: Iterable[Member]) -> list[Hashable]:
    """What the inline tracker knows a call by: phase, participant class and name."""
    return [(phase, type(m.obj).__qualname__, m.name) for m in members]


def bind_prepare(obj: Any, txid: str, data: Mapping[str, Any]) -> Callable[[], object]:
    return lambda: obj.prepare(txid, data)


def bind_one_phase(obj: Any, txid: str, data: Mapping[str, Any]) -> Callable[[], object]:
    return lambda: obj.commit_one_phase(txid, data)


def bind_many(obj: Any, method: str, txids: list[str]) -> Callable[[], object]:
    call = getattr(obj, method)
    return lambda: call(list(txids))


def bind_action(obj: Any, txid: str, data: Mapping[str, Any]) -> Callable[[], object]:
    return lambda: obj.action(txid, data)


def bind_compensate(obj: Any, txid: str, data: Mapping[str, Any] | None) -> Callable[[], object]:
    """``compensate(txid, data)`` when ``data`` is given (the step takes it), else
    ``compensate(txid)``."""
    if data is None:
        return lambda: obj.compensate(txid)
    return lambda: obj.compensate(txid, data)


def bind_phase2(obj: Any, phase: str, txid: str) -> Callable[[], object]:
    method = obj.commit if phase == "commit" else obj.rollback
    return lambda: method(txid)
