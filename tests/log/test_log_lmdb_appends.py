"""What the format-1 write-ahead log guaranteed (tests/test_wal.py), on ``LmdbLog``: where
new records go after a reopen, refusals inside one batch, syncs, what an open reads, the
directory lock, abandon and paths that are not logs. The contract every backend keeps is
test_log_contract.py; the layout and damage modes are test_log_lmdb.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import lmdb
import pytest
from helpers import wait_until

import dtc_wal.log.lmdb.reader
from dtc_wal import TransactionCoordinator
from dtc_wal.errors import (
    CoordinatorClosedError,
    InvalidOptionError,
    InvalidTransitionError,
    LogError,
    LogLockedError,
)
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY
from dtc_wal.protocol.records import Acked, MemberState

from .conftest import MakeLog, decided, ended, opened


def record_keys(log_dir: Path) -> list[tuple[int, int]]:
    env = lmdb.open(str(log_dir), max_dbs=8, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            db = env.open_db(b"records", txn=txn)
            return [RECORD_KEY.unpack(bytes(k)) for k, _ in txn.cursor(db=db)]
    finally:
        env.close()


# -- where records go after a reopen ---------------------------------------------------------


def test_transaction_numbers_and_sequences_continue_after_reopen(
    make_log: MakeLog, log_dir: Path
) -> None:
    log = make_log()
    log.append([opened("t1", 1.0), opened("t2", 1.0)])
    log.append([decided("t1", 2.0)])
    log.append([ended("t2", 3.0)])
    log.close()
    log = make_log()  # t1 goes on at sequence 2; a new transaction takes number 3
    log.append([Acked("t1", 4.0, ((0, MemberState.COMMITTED),))])
    log.append([opened("t3", 5.0)])
    with pytest.raises(InvalidTransitionError, match="already ended"):
        log.append([decided("t2", 6.0)])  # ended before the reopen: still refused
    log.close()
    assert record_keys(log_dir) == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (3, 0)]
    stored = make_log(readonly=True).read("t1")
    assert stored is not None and stored.damage is None and len(stored.records) == 3


# -- refusals inside one batch ---------------------------------------------------------------


def test_a_refused_entry_in_a_batch_refuses_it_alone_and_the_batch_lands(
    make_log: MakeLog, caplog: pytest.LogCaptureFixture
) -> None:
    log = make_log(lazy_delay=60.0)  # nothing is written until the durable append leads
    told: dict[str, BaseException | None] = {}
    log.submit([opened("a")], durable=False, on_done=lambda e: told.__setitem__("a", e))
    log.submit([decided("never")], durable=False, on_done=lambda e: told.__setitem__("x", e))
    log.submit(
        [opened("b"), decided("b")], durable=False, on_done=lambda e: told.__setitem__("b", e)
    )
    with caplog.at_level(logging.ERROR, logger="dtc_wal.log"):
        log.append([decided("ended-never")], durable=False)  # refused, nobody to tell
        syncs = log.syncs
        log.append([opened("c")])  # leads the batch: everything queued rides it
    assert log.syncs == syncs + 1  # one batch, one sync
    assert told["a"] is None and told["b"] is None
    assert isinstance(told["x"], InvalidTransitionError)
    assert all(log.read(t) is not None for t in ("a", "b", "c"))
    assert log.read("never") is None and log.read("ended-never") is None
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert [m for m in refused if "ended-never" in m and "refused" in m]  # logged, not lost


def test_flush_with_nothing_queued_does_not_sync(make_log: MakeLog) -> None:
    log = make_log()
    log.append([opened("t1")])
    syncs = log.syncs
    log.flush()
    log.flush()
    assert log.syncs == syncs
    log.append([ended("t1")], durable=False)
    log.flush()
    assert log.syncs == syncs + 1


def test_mixed_lazy_and_waiting_appends_from_many_threads(make_log: MakeLog) -> None:
    """Whole transactions from 8 threads, their later records lazy: after flush every
    one is complete in the log, in order, and none is left unfinished."""
    per_thread, threads_n = 30, 8
    errors: list[BaseException] = []
    log = make_log()

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                txid = f"t{t}-{i}"
                log.append([opened(txid, 1.0)])
                log.append([decided(txid, 2.0)], durable=False)
                log.append([Acked(txid, 3.0, ((0, MemberState.COMMITTED),))], durable=False)
                log.append([ended(txid, 4.0)], durable=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    log.flush()
    assert errors == []
    info = log.info()
    assert (info.transactions, info.records) == (per_thread * threads_n, per_thread * threads_n * 4)
    assert info.unfinished == 0 and list(log.unfinished()) == []
    assert log.syncs < info.records
    log.close()
    stored = make_log().read("t3-17")
    assert stored is not None and stored.finished
    assert [type(r).__name__ for r in stored.records] == ["Opened", "Decided", "Acked", "Ended"]


# -- what an open reads ----------------------------------------------------------------------


def test_reopen_reads_only_unfinished_transactions(
    make_log: MakeLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = make_log()
    for i in range(5):
        log.append([opened(f"done-{i}"), decided(f"done-{i}")])
        log.append([ended(f"done-{i}")])
    log.append([opened("open"), decided("open")])
    log.close()
    read: list[str | None] = []
    decode = dtc_wal.log.lmdb.reader.decode

    def spy(key: bytes, value: bytes, txid: str | None, seq: int) -> Any:
        read.append(txid)
        return decode(key, value, txid, seq)

    monkeypatch.setattr(dtc_wal.log.lmdb.reader, "decode", spy)
    log = make_log()
    assert read == []  # opening the log for appends decodes no record
    assert [t.txid for t in log.unfinished()] == ["open"]
    assert read == ["open", "open"]  # its two records, nothing of the finished history
    done = log.read("done-3")  # which is still there on demand
    assert done is not None and done.finished


def test_a_coordinator_opening_reads_only_unfinished_transactions(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LmdbLog(log_dir) as log:
        for i in range(5):
            log.append([opened(f"done-{i}"), decided(f"done-{i}"), ended(f"done-{i}")])
    read: list[str | None] = []
    decode = dtc_wal.log.lmdb.reader.decode

    def spy(key: bytes, value: bytes, txid: str | None, seq: int) -> Any:
        read.append(txid)
        return decode(key, value, txid, seq)

    monkeypatch.setattr(dtc_wal.log.lmdb.reader, "decode", spy)
    coord = TransactionCoordinator(log_dir, recovery_interval=None)
    try:
        assert coord.last_recovery_report.examined == 0
        assert read == []  # start-up read nothing of the finished history
    finally:
        coord.close()


# -- the directory lock --------------------------------------------------------------------------

HOLDER = """
import sys, time
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol.records import MemberSpec, Mode, Opened
log = LmdbLog(sys.argv[1])
log.append([Opened("held", 1.0, Mode.TWO_PHASE, (MemberSpec("a"),))])
print("ready", flush=True)
time.sleep(600)
"""


def test_lock_held_by_another_process_names_it_and_dies_with_it(log_dir: Path) -> None:
    root = Path(__file__).resolve().parent.parent.parent
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(log_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(LogLockedError, match=f"pid {child.pid} on "):
            LmdbLog(log_dir)
    finally:
        child.kill()  # SIGKILL: no cleanup; the kernel drops the flock
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    with LmdbLog(log_dir) as log:
        assert [t.txid for t in log.unfinished()] == ["held"]


def test_lock_is_released_on_close(log_dir: Path) -> None:
    log = LmdbLog(log_dir)
    log.close()
    with LmdbLog(log_dir) as again:
        again.append([opened("t1")])
        assert again.read("t1") is not None


# -- abandon: a crash in-process ------------------------------------------------------------------


def test_abandon_wakes_queued_appenders_and_writes_nothing_of_theirs(log_dir: Path) -> None:
    """abandon() is a crash: the batch being written lands, queued ones do not, and their
    appenders get CoordinatorClosedError instead of waiting forever."""
    log = LmdbLog(log_dir, lazy_delay=60.0)
    appender = log._appender  # the store behind group commit: hold its first write
    assert appender is not None
    real = appender.write_batch
    entered, release = threading.Event(), threading.Event()

    def held(batch: Any) -> Any:
        if not entered.is_set():
            entered.set()
            assert release.wait(10)
        return real(batch)

    appender.write_batch = held  # type: ignore[method-assign]
    results: dict[str, BaseException | None] = {}

    def run(txid: str) -> None:
        try:
            log.append([opened(txid)])
            results[txid] = None
        except BaseException as exc:
            results[txid] = exc

    leader = threading.Thread(target=run, args=("t-leader",))
    leader.start()
    assert entered.wait(10)
    follower = threading.Thread(target=run, args=("t-follower",))
    follower.start()
    told: list[BaseException | None] = []
    log.submit([opened("t-lazy")], durable=False, on_done=told.append)
    assert wait_until(lambda: len(log._commit._queue) == 2)  # type: ignore[union-attr]
    abandoner = threading.Thread(target=log.abandon)
    abandoner.start()
    assert wait_until(lambda: "t-follower" in results)
    assert isinstance(results["t-follower"], CoordinatorClosedError)
    assert len(told) == 1 and isinstance(told[0], CoordinatorClosedError)
    release.set()
    for thread in (leader, follower, abandoner):
        thread.join(10)
        assert not thread.is_alive()
    assert results["t-leader"] is None
    with LmdbLog(log_dir) as again:
        assert again.read("t-leader") is not None
        assert again.read("t-follower") is None and again.read("t-lazy") is None


# -- paths that are not logs ---------------------------------------------------------------------


def test_log_path_that_is_a_file_raises_log_error(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    with pytest.raises(LogError, match=f"{path} is a file, not a directory"):
        LmdbLog(path / "log")
    with pytest.raises(LogError, match=f"{path} is a file, not a log directory"):
        LmdbLog(path)


def test_read_only_open_of_a_foreign_lmdb_raises_log_error(tmp_path: Path) -> None:
    """An LMDB directory without the log's tables is not a log: LogError, not lmdb's."""
    env = lmdb.open(str(tmp_path), max_dbs=2)
    env.open_db(b"something-else")
    env.close()
    with pytest.raises(LogError, match="not a dtc-wal log"):
        LmdbLog(tmp_path, readonly=True)


def test_the_writer_thread_option_is_refused_on_format_2(log_dir: Path) -> None:
    """Format 1 had a dedicated log-writer thread (``log_writer='thread'``); format 2
    always commits in groups led by the appenders, and says so."""
    with pytest.raises(InvalidOptionError, match="log_writer='thread' is a format-1 option"):
        TransactionCoordinator(log_dir, log_writer="thread")
    assert not (log_dir / "data.mdb").exists()  # refused before the log was made
