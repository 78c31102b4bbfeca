"""A recovery pass drives several transactions at once (``recovery_workers``).

One participant that hangs must hold up only its own transaction, not every transaction
after it in the log; the report still lists transactions in log order.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import FOREVER, Failures, Journal, RecordingParticipant, wait_until

from dtc_wal import ParticipantRegistry, TransactionCoordinator, TxState
from dtc_wal.clock import ManualClock
from dtc_wal.errors import CommitIncompleteError, LogError

MakeCoord = Callable[..., TransactionCoordinator]
QUICK = 5


def _in_doubt_log(
    make_coord: MakeCoord, registry: ParticipantRegistry, names: list[str]
) -> list[str]:
    """One decided-commit transaction per factory name, each left in doubt by it."""
    registry.register("ok", lambda **_: RecordingParticipant("ok"))
    for name in names:
        registry.register(
            name, lambda **_: RecordingParticipant("down", commit_failures=Failures(FOREVER))
        )
    coord = make_coord(clock=ManualClock(), max_retries=0, recovery_interval=None)
    txids = []
    for name in names:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, "ok")
        coord.enlist_participant(txid, name)
        with pytest.raises(CommitIncompleteError):
            coord.commit_transaction(txid)
        txids.append(txid)
    coord.close()
    return txids


class _Gate:
    """The hanging participant's commit returns only once every quick one has committed."""

    def __init__(self, quick: int) -> None:
        self.left = quick
        self.all_quick_done = threading.Event()
        self.lock = threading.Lock()
        self.journal = Journal()

    def quick_committed(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.all_quick_done.set()


def _registry(registry: ParticipantRegistry, gate: _Gate) -> None:
    """The participants are back: quick ones commit at once, the hanging one waits."""
    for i in range(QUICK):
        registry.register(
            f"quick{i}",
            lambda **_: RecordingParticipant(
                "quick", gate.journal, on_commit=lambda _txid: gate.quick_committed()
            ),
            replace=True,
        )
    registry.register(
        "hanging",
        lambda **_: RecordingParticipant(
            "hanging", gate.journal, on_commit=lambda _txid: gate.all_quick_done.wait(10)
        ),
        replace=True,
    )


def _reopen(make_coord: MakeCoord, workers: int) -> TransactionCoordinator:
    return make_coord(recovery_interval=None, phase2_timeout=1.0, recovery_workers=workers)


def test_a_hanging_participant_does_not_hold_up_the_transactions_behind_it(
    make_coord: MakeCoord, registry: ParticipantRegistry
) -> None:
    # the hanging transaction is the oldest: a pass taking them in order meets it first
    txids = _in_doubt_log(make_coord, registry, ["hanging"] + [f"quick{i}" for i in range(QUICK)])
    gate = _Gate(QUICK)
    _registry(registry, gate)

    coord = _reopen(make_coord, workers=3)

    report = coord.last_recovery_report
    assert report.in_doubt == []
    assert [a.txid for a in report.transactions] == txids  # log order, not finishing order
    assert all(coord.state(t) is TxState.COMMITTED for t in txids)
    assert gate.all_quick_done.is_set()


def test_one_worker_takes_them_one_after_another(
    make_coord: MakeCoord, registry: ParticipantRegistry
) -> None:
    """The same log with ``recovery_workers=1``: the hanging commit times out first (this is
    what the parallel pass avoids), and stays in doubt."""
    txids = _in_doubt_log(make_coord, registry, ["hanging"] + [f"quick{i}" for i in range(QUICK)])
    gate = _Gate(QUICK)
    _registry(registry, gate)

    coord = _reopen(make_coord, workers=1)

    report = coord.last_recovery_report
    assert [(d.txid, d.participant) for d in report.in_doubt] == [(txids[0], "hanging")]
    assert all(coord.state(t) is TxState.COMMITTED for t in txids[1:])
    assert coord.state(txids[0]) is TxState.DECIDED_COMMIT


def _quick_log_not_recovered(
    make_coord: MakeCoord, registry: ParticipantRegistry
) -> tuple[list[str], TransactionCoordinator]:
    """QUICK in-doubt transactions, their participants back, and a coordinator that has
    not recovered them yet."""
    txids = _in_doubt_log(make_coord, registry, [f"quick{i}" for i in range(QUICK)])
    _registry(registry, _Gate(QUICK))
    return txids, make_coord(recovery_interval=None, recover=False, recovery_workers=4)


def test_progress_counts_every_transaction_once(
    make_coord: MakeCoord, registry: ParticipantRegistry
) -> None:
    txids, coord = _quick_log_not_recovered(make_coord, registry)
    seen: list[tuple[int, int]] = []

    report = coord.recover_now(progress=lambda done, total: seen.append((done, total)))

    assert seen == [(i, QUICK) for i in range(1, QUICK + 1)]
    assert sorted(report.finished) == sorted(txids)


def test_an_error_in_one_transaction_is_raised_after_the_others_ran_on_format_2(
    make_coord: MakeCoord, registry: ParticipantRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dtc_wal.drivers import recovery

    txids, coord = _quick_log_not_recovered(make_coord, registry)
    if not hasattr(coord, "engine"):
        pytest.skip("the format-1 twin above covers the format-1 coordinator")
    real = recovery._recover_stored

    def failing(driver: Any, registry: Any, options: Any, stored: Any, *rest: Any) -> Any:
        if stored.txid == txids[1]:
            raise LogError("disk gone (injected)")
        return real(driver, registry, options, stored, *rest)

    monkeypatch.setattr(recovery, "_recover_stored", failing)
    with pytest.raises(LogError, match="disk gone"):
        coord.recover_now()
    # every other transaction was still driven to its end
    assert [t for t in txids if coord.state(t) is not TxState.COMMITTED] == [txids[1]]


def _waits_on_futures(thread_id: int) -> bool:
    """True while the thread is blocked in concurrent.futures' wait or as_completed."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        code = frame.f_code
        if code.co_name in ("wait", "as_completed") and "concurrent" in code.co_filename:
            return True
        frame = frame.f_back
    return False


def test_ctrl_c_stops_the_pass_taking_new_transactions(
    make_coord: MakeCoord, registry: ParticipantRegistry
) -> None:
    """SIGINT while a pass runs on workers (``dtc recover``, Ctrl-C): the calls in flight
    end, the transactions not started yet are left for the next pass, and the interrupt
    reaches the caller -- the pass does not first drive every transaction left."""
    names = [f"slow{i}" for i in range(6)]
    txids = _in_doubt_log(make_coord, registry, names)
    interrupted = threading.Event()
    committed: list[str] = []
    main = threading.main_thread().ident
    assert main is not None

    released: list[bool] = []

    def hold(txid: str) -> None:
        committed.append(txid)
        if len(committed) == 1:
            # Once the pass waits on its workers (every transaction handed out so far);
            # then again until handled: a signal that lands just before the main thread
            # blocks does not wake it (the handler runs when it next wakes).
            assert wait_until(lambda: _waits_on_futures(main), timeout=10)
            for _ in range(1000):
                signal.pthread_kill(main, signal.SIGINT)
                if interrupted.wait(0.01):
                    break
        released.append(interrupted.wait(10))

    for name in names:
        registry.register(
            name, lambda **_: RecordingParticipant("slow", on_commit=hold), replace=True
        )

    def on_sigint(signum: int, frame: Any) -> None:
        if not interrupted.is_set():  # the first one interrupts; repeats change nothing
            interrupted.set()
            raise KeyboardInterrupt

    coord = make_coord(recovery_interval=None, recover=False, recovery_workers=2)
    before = signal.signal(signal.SIGINT, on_sigint)
    try:
        with pytest.raises(KeyboardInterrupt):
            coord.recover_now()
    finally:
        signal.signal(signal.SIGINT, before)
    assert interrupted.is_set()
    assert all(released)  # the calls in flight ended once the interrupt was handled
    assert 1 <= len(committed) <= 2  # the two workers' calls in flight, no new ones
    left = [t for t in txids if coord.state(t) is TxState.DECIDED_COMMIT]
    assert len(left) >= 4
    assert sorted(coord.recover_now().finished) == sorted(left)  # the next pass takes them


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4"])
def test_recovery_workers_must_be_a_positive_int(log_dir: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="recovery_workers must be an int >= 1"):
        TransactionCoordinator(log_dir, recovery_workers=bad)  # type: ignore[arg-type]
    # nothing was opened: the log is free for the next coordinator
    TransactionCoordinator(log_dir, recovery_interval=None).close()


def test_an_interrupt_during_start_up_recovery_releases_the_log(
    make_coord: MakeCoord, registry: ParticipantRegistry
) -> None:
    """Ctrl-C while the opening pass runs: the constructor raises it, the log is not left
    locked, nothing logged is lost, and the next open recovers everything."""
    txids = _in_doubt_log(make_coord, registry, [f"quick{i}" for i in range(QUICK)])
    gate = _Gate(QUICK)
    _registry(registry, gate)
    real = registry.create

    def interrupted(name: str, params: Any = None) -> Any:
        if name == "quick2":
            raise KeyboardInterrupt
        return real(name, params)

    registry.create = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        make_coord(recovery_interval=None, recovery_workers=4)
    del registry.create

    coord = make_coord(recovery_interval=None)
    assert all(coord.state(t) is TxState.COMMITTED for t in txids)
    assert coord.last_recovery_report.in_doubt == []
