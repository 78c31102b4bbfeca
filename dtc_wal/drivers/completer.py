"""``commit(..., wait=False)``: after the durable commit decision the caller gets a
:class:`~dtc_wal.coordinator.completer.CommitHandle` and a completer thread runs the rest.

Each round takes every run queued since the last one. The commit calls of all of them to
one participant object that has ``commit_many(txids)`` become one call; each machine is
then told ``Acknowledged`` for its member (a failed batch call leaves those calls to the
machines' own commits). Everything else each run still has to do is driven as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..errors import CommitIncompleteError, CoordinatorClosedError
from ..protocol import Acknowledged, Call, Command, Event, Op
from .handle import CommitHandle
from .run import Run
from .threaded import ThreadedDriver

__all__ = ["Completer"]

log = logging.getLogger("dtc_wal.drivers")

_Item = tuple[Run, list[Command], CommitHandle]


class Completer:
    """One background thread finishing ``wait=False`` commits, batched by object."""

    def __init__(self, driver: ThreadedDriver, done: Callable[[Run], None]) -> None:
        self.driver = driver
        self.done = done  # told about every run it finished (complete or not)
        self._queue: list[_Item] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._drain = True
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.batched_calls = 0

    def submit(self, run: Run, commands: list[Command]) -> CommitHandle:
        handle = CommitHandle(run.txid)
        with self._cond:
            if self._stopping:
                raise CoordinatorClosedError("the engine is closing; commit with wait=True")
            self._queue.append((run, commands, handle))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="dtc-driver-completer", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return handle

    def stop(self, drain: bool) -> None:
        with self._cond:
            self._stopping = True
            self._drain = drain
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                if self._stopping and not self._drain:
                    for _, _, handle in batch:
                        handle._future.set_exception(
                            CoordinatorClosedError("abandoned before phase two finished")
                        )
                    return
                if not batch:
                    return
            self.rounds += 1
            self._round(batch)

    def _round(self, batch: list[_Item]) -> None:
        acks = self._commit_many(batch)
        for run, commands, handle in batch:
            own = acks.get(id(run), ())
            try:
                self.driver.drive(run, [c for c in commands if not _batched(c, own)], own)
                run.result()
            except CommitIncompleteError as exc:
                handle._future.set_exception(exc)
            except Exception as exc:  # the decision is durable: recovery finishes the rest
                log.exception("txid=%s phase two failed; recovery will finish it", run.txid)
                handle._future.set_exception(CommitIncompleteError(run.txid, [], [str(exc)]))
            else:
                handle._future.set_result(None)
            finally:
                self.done(run)

    def _commit_many(self, batch: list[_Item]) -> dict[int, list[Event]]:
        """One ``commit_many`` per object over the round; the acknowledgements per run."""
        groups: dict[int, tuple[Any, list[tuple[Run, Call]]]] = {}
        for run, commands, _ in batch:
            for command in commands:
                if type(command) is Call and command.op is Op.COMMIT:
                    member = run.members[command.member]
                    if member.can.commit_many and member.obj is not None:
                        groups.setdefault(id(member.obj), (member.obj, []))[1].append(
                            (run, command)
                        )
        acks: dict[int, list[Event]] = {}
        driver = self.driver
        for obj, items in groups.values():
            txids = [run.txid for run, _ in items]
            result = driver.policy.call(
                _many(obj, txids),
                name=items[0][0].members[items[0][1].member].name,
                txid=",".join(txids[:3]),
                phase="commit_many",
                clock=driver.clock,
                retry_any=True,
            )
            if not result.ok:
                continue  # each machine's own commit call goes ahead
            self.batched_calls += 1
            now = driver.clock.now()
            for run, call in items:
                acks.setdefault(id(run), []).append(Acknowledged(now, call.member, Op.COMMIT))
        return acks


def _many(obj: Any, txids: list[str]) -> Callable[[], object]:
    return lambda: obj.commit_many(list(txids))


def _batched(command: Command, acks: list[Event] | tuple[()]) -> bool:
    return (
        type(command) is Call
        and command.op is Op.COMMIT
        and any(a.member == command.member for a in acks if isinstance(a, Acknowledged))
    )
