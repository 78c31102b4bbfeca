"""The write-ahead log on a real LMDB directory: LSNs, tables, the txid index, group commit,
lazy records, the directory lock and map growth."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest
from dtc_wal.records import decode_record, encode_record, lsn_key, unframe, unpack
from dtc_wal.wal import DirectoryLock, WriteAheadLog, unfinished
from dtc_wal.wal.store import MIB, LogStore
from helpers import record, types_of, wait_until

from dtc_wal.errors import (
    CoordinatorClosedError,
    InvalidTransitionError,
    LogError,
    LogFullError,
    LogLockedError,
    TransactionDamagedError,
    UnencodableDataError,
)
from dtc_wal.states import Mode, Outcome, RecordType, TxState

R = RecordType
MakeWal = Callable[..., WriteAheadLog]


def begun(txid: str) -> list[Any]:
    return [record(R.BEGUN, txid)]


def opening(txid: str, *names: str) -> list[Any]:
    return [
        record(R.BEGUN, txid),
        *(
            record(R.ENLISTED, txid, participant=n, mode=Mode.TWO_PHASE, order=i)
            for i, n in enumerate(names)
        ),
    ]


def full_abort(txid: str, *names: str) -> list[Any]:
    """A whole aborted transaction: opening, decision, acknowledgements, completion."""
    return [
        *opening(txid, *names),
        record(R.DECIDED_ABORT, txid, reason="test"),
        *(record(R.ACKNOWLEDGED, txid, participant=n, outcome=Outcome.ROLLBACK) for n in names),
        record(R.COMPLETED, txid),
    ]


def raw_tables(log_dir: Path) -> dict[str, dict[bytes, bytes]]:
    """Every table of a closed log, read with lmdb directly."""
    env = lmdb.open(str(log_dir), max_dbs=8, subdir=True, readonly=True, lock=False)
    try:
        out: dict[str, dict[bytes, bytes]] = {}
        with env.begin() as txn:
            for name in ("records", "txns", "unfinished", "meta"):
                db = env.open_db(name.encode(), txn=txn, create=False)
                out[name] = {bytes(k): bytes(v) for k, v in txn.cursor(db=db)}
        return out
    finally:
        env.close()


# --- appends, LSNs, keys -------------------------------------------------------------


def test_append_returns_increasing_lsns(make_wal: MakeWal) -> None:
    wal = make_wal()
    first = wal.append(opening("t1", "a", "b"))
    second = wal.append(begun("t2"))
    third = wal.append([record(R.PREPARED, "t1", participant="a")])
    assert first == [1, 2, 3]
    assert second == [4]
    assert third == [5]


def test_lsns_continue_after_reopen(log_dir: Path) -> None:
    with WriteAheadLog(log_dir) as wal:
        assert wal.append(opening("t1", "a")) == [1, 2]
    with WriteAheadLog(log_dir) as wal:
        assert wal.append(begun("t2")) == [3]
        assert wal.append([record(R.PREPARED, "t1", participant="a")]) == [4]


def test_keys_are_8_byte_big_endian_lsns(log_dir: Path) -> None:
    with WriteAheadLog(log_dir) as wal:
        lsns: list[int] = []
        for i in range(300):  # past 255, so a little-endian key would sort wrongly
            got = wal.append(begun(f"t{i}"))
            assert got is not None
            lsns += got
    records = raw_tables(log_dir)["records"]
    assert all(len(k) == 8 for k in records)
    assert [struct.unpack(">Q", k)[0] for k in records] == lsns == list(range(1, 301))
    for key, value in records.items():
        decoded = decode_record(value, struct.unpack(">Q", key)[0])
        assert decoded.type is R.BEGUN
    assert struct.unpack(">Q", raw_tables(log_dir)["meta"][b"last-lsn"])[0] == 300


def test_records_of_a_transaction_read_back_in_log_order(make_wal: MakeWal) -> None:
    wal = make_wal()
    wal.append(opening("t1", "a"))
    wal.append(begun("t2"))
    wal.append([record(R.DECIDED_ABORT, "t1", reason="x")])
    records = wal.store.records_of("t1")
    assert [lsn for lsn, _ in records] == [1, 2, 4]
    assert types_of(records) == [R.BEGUN, R.ENLISTED, R.DECIDED_ABORT]
    assert wal.store.records_of("never") == []


# --- refused records -------------------------------------------------------------------


def test_refused_append_writes_nothing_of_that_call(make_wal: MakeWal) -> None:
    wal = make_wal()
    wal.append(opening("t1", "a"))
    syncs_before = wal.syncs
    with pytest.raises(InvalidTransitionError, match="not prepared: a"):
        wal.append([record(R.DECIDED_COMMIT, "t1")])
    # a call whose second record is impossible: the first one is not written either
    with pytest.raises(InvalidTransitionError):
        wal.append([record(R.PREPARED, "t1", participant="a"), record(R.COMPLETED, "t1")])
    assert wal.store.counts()["records"] == 2
    assert wal.view("t1") is not None
    assert wal.view("t1").participants["a"].state.value == "enlisted"  # type: ignore[union-attr]
    assert wal.append([record(R.PREPARED, "t1", participant="a")]) == [3]
    assert wal.syncs > syncs_before


@pytest.mark.parametrize(
    ("records", "why"),
    [
        ([record(R.PREPARED, "ghost", participant="a")], "never begun"),
        (begun("done"), "already begun"),
        ([record(R.DECIDED_COMMIT, "done")], "already finished"),
        ([*begun("twice"), *begun("twice")], "BEGUN"),
    ],
    ids=["never-begun", "begun-again-after-finish", "after-finish", "begun-twice-in-one-call"],
)
def test_records_for_unknown_or_finished_transactions_are_refused(
    make_wal: MakeWal, records: list[Any], why: str
) -> None:
    wal = make_wal()
    wal.append(full_abort("done", "a"))
    count = wal.store.counts()["records"]
    with pytest.raises(InvalidTransitionError, match=why):
        wal.append(records)
    assert wal.store.counts()["records"] == count


def hold_first_write(wal: WriteAheadLog) -> tuple[threading.Event, threading.Event]:
    """Make the next batch write wait inside the writer until ``release`` is set;
    ``entered`` is set once it waits. Returns ``(release, entered)``."""
    release = threading.Event()
    entered = threading.Event()
    write = wal.store.write

    def held_write(body: Callable[[lmdb.Transaction], Any]) -> Any:
        if not entered.is_set():
            entered.set()
            assert release.wait(10)
        return write(body)

    wal.store.write = held_write  # type: ignore[method-assign]
    return release, entered


def append_in_one_batch(
    wal: WriteAheadLog, entries: list[tuple[str, list[Any]]]
) -> tuple[dict[str, Any], int]:
    """Queue ``entries`` (key, records) from threads behind a leader held inside its LMDB
    write, so they share the next batch. Returns each key's LSNs or exception (the
    leader's under "leader") and how many batches were written meanwhile."""
    release, entered = hold_first_write(wal)
    results: dict[str, Any] = {}

    def run(key: str, records: list[Any]) -> None:
        try:
            results[key] = wal.append(records)
        except Exception as exc:
            results[key] = exc

    batches_before = wal.batches
    leader = threading.Thread(target=run, args=("leader", begun("t-leader")))
    leader.start()
    assert entered.wait(10)
    threads = []
    for key, records in entries:
        thread = threading.Thread(target=run, args=(key, records))
        thread.start()
        threads.append(thread)
        queued = len(threads)  # queue them in a known order
        assert wait_until(lambda: len(wal._queue) == queued)  # noqa: B023
    release.set()
    for thread in [leader, *threads]:
        thread.join(10)
    del wal.store.write
    return results, wal.batches - batches_before


def test_refused_entry_does_not_affect_other_appenders_in_its_batch(make_wal: MakeWal) -> None:
    """Three appenders share one batch, in which the middle one is refused and the other
    two land."""
    wal = make_wal()
    wal.append(opening("t1", "a"))
    results, batches = append_in_one_batch(
        wal,
        [
            ("good-1", begun("t-good-1")),
            ("bad", [record(R.DECIDED_COMMIT, "t1")]),  # "a" is not prepared
            ("good-2", [record(R.PREPARED, "t1", participant="a")]),
        ],
    )
    assert isinstance(results["bad"], InvalidTransitionError)
    assert results["leader"] == [3]
    assert results["good-1"] == [4]
    assert results["good-2"] == [5]
    assert batches == 2  # the leader's batch, then the shared one
    assert wal.view("t1").participants["a"].state.value == "prepared"  # type: ignore[union-attr]
    assert wal.view("t1").state is TxState.ACTIVE  # type: ignore[union-attr]
    assert types_of(wal.store.records_of("t1")) == [R.BEGUN, R.ENLISTED, R.PREPARED]


def test_unencodable_record_is_refused_alone(make_wal: MakeWal) -> None:
    """A record msgpack cannot encode fails only its own append, never the batch."""
    wal = make_wal()
    results, batches = append_in_one_batch(
        wal,
        [
            ("good-1", begun("t-good-1")),
            ("bad", [record(R.BEGUN, "t-bad", data={"x": object()})]),
            ("good-2", begun("t-good-2")),
        ],
    )
    assert isinstance(results["bad"], UnencodableDataError)
    assert (results["good-1"], results["good-2"]) == ([2], [3])
    assert batches == 2
    assert wal.view("t-bad") is None
    assert sorted(wal.store.unfinished_txids()) == ["t-good-1", "t-good-2", "t-leader"]


def test_refused_lazy_entry_is_logged_and_the_batch_lands(
    make_wal: MakeWal, caplog: pytest.LogCaptureFixture
) -> None:
    wal = make_wal(lazy_delay=0.2)
    wal.append(opening("t1", "a"))
    caplog.set_level(logging.ERROR, logger="dtc_wal")
    assert wal.append(begun("lazy-good"), wait=False) is None
    assert wal.append([record(R.COMPLETED, "t1")], wait=False) is None  # not decided
    assert wal.append([record(R.PREPARED, "t1", participant="a")]) is not None
    wal.flush()
    assert wal.view("lazy-good") is not None
    assert types_of(wal.store.records_of("t1")) == [R.BEGUN, R.ENLISTED, R.PREPARED]
    assert "lazy log records refused" in caplog.text
    assert "t1" in caplog.text


# --- lazy records and flush -------------------------------------------------------------


def test_lazy_records_land_after_flush(log_dir: Path) -> None:
    with WriteAheadLog(log_dir, lazy_delay=0.2) as wal:
        wal.append(opening("t1", "a"))
        assert wal.append([record(R.DECIDED_ABORT, "t1", reason="x")], wait=False) is None
        assert (
            wal.append(
                [
                    record(R.ACKNOWLEDGED, "t1", participant="a", outcome=Outcome.ROLLBACK),
                    record(R.COMPLETED, "t1"),
                ],
                wait=False,
            )
            is None
        )
        wal.flush()
        assert types_of(wal.store.records_of("t1")) == [
            R.BEGUN,
            R.ENLISTED,
            R.DECIDED_ABORT,
            R.ACKNOWLEDGED,
            R.COMPLETED,
        ]
        assert wal.unfinished() == []
    with WriteAheadLog(log_dir) as wal:
        assert wal.view("t1").state is TxState.ABORTED  # type: ignore[union-attr]


def test_lazy_records_land_without_flush(make_wal: MakeWal) -> None:
    wal = make_wal(lazy_delay=0.001)
    wal.append(begun("t1"), wait=False)
    assert wait_until(lambda: wal.store.records_of("t1") != [])


def test_close_writes_queued_lazy_records(log_dir: Path) -> None:
    wal = WriteAheadLog(log_dir, lazy_delay=0.2)
    wal.append(begun("t1"), wait=False)
    wal.close()
    with WriteAheadLog(log_dir) as wal:
        assert [v.txid for v in wal.unfinished()] == ["t1"]


def test_flush_with_nothing_queued_does_not_sync(make_wal: MakeWal) -> None:
    wal = make_wal()
    wal.append(begun("t1"))
    syncs = wal.syncs
    wal.flush()
    assert wal.syncs == syncs


def test_append_after_close_raises(log_dir: Path) -> None:
    wal = WriteAheadLog(log_dir)
    wal.close()
    wal.close()  # idempotent
    with pytest.raises(CoordinatorClosedError):
        wal.append(begun("t1"))


# --- the txid index -------------------------------------------------------------------


def test_index_lists_only_unfinished_transactions(log_dir: Path) -> None:
    with WriteAheadLog(log_dir) as wal:
        wal.append(full_abort("done", "a"))
        wal.append(opening("open", "a", "b"))
        wal.append(begun("bare"))
        assert sorted(wal.store.unfinished_txids()) == ["bare", "open"]
        assert wal.store.counts() == {"records": 9, "transactions": 3, "unfinished": 2}
    tables = raw_tables(log_dir)
    assert set(tables["unfinished"]) == {b"bare", b"open"}
    assert set(tables["unfinished"].values()) == {b""}
    assert set(tables["txns"]) == {b"bare", b"done", b"open"}
    done = unpack(unframe(tables["txns"][b"done"]))
    assert done["s"] == "aborted"
    assert done["l"] == [1, 2, 3, 4, 5]
    assert done["p"] == {"a": "rolled-back"}
    opened = unpack(unframe(tables["txns"][b"open"]))
    assert (opened["s"], opened["m"], opened["l"]) == ("active", "2pc", [6, 7, 8])


def test_reopen_reads_only_unfinished_transactions(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with WriteAheadLog(log_dir) as wal:
        for i in range(5):
            wal.append(full_abort(f"done-{i}", "a"))
        wal.append(opening("open", "a"))
    read: list[str] = []
    decode = unfinished.decode_record

    def spy(value: bytes, lsn: int | None = None) -> Any:
        decoded = decode(value, lsn)
        read.append(decoded.txid)
        return decoded

    monkeypatch.setattr(unfinished, "decode_record", spy)
    with WriteAheadLog(log_dir) as wal:
        assert read == ["open", "open"]  # its two records, nothing of the history
        assert [v.txid for v in wal.unfinished()] == ["open"]
        # finished history is still there on demand
        assert wal.view("done-3").state is TxState.ABORTED  # type: ignore[union-attr]


def test_transaction_leaves_index_when_completed(make_wal: MakeWal) -> None:
    wal = make_wal()
    txid = "t1"
    wal.append(opening(txid, "a"))
    assert wal.store.unfinished_txids() == [txid]
    wal.append([record(R.DECIDED_ABORT, txid)])
    assert wal.store.unfinished_txids() == [txid]
    assert [v.state for v in wal.unfinished()] == [TxState.DECIDED_ABORT]
    wal.append(
        [
            record(R.ACKNOWLEDGED, txid, participant="a", outcome=Outcome.ROLLBACK),
            record(R.COMPLETED, txid),
        ]
    )
    assert wal.store.unfinished_txids() == []
    assert wal.unfinished() == []
    assert wal.view(txid).state is TxState.ABORTED  # type: ignore[union-attr]


def test_unfinished_views_survive_reopen(log_dir: Path) -> None:
    with WriteAheadLog(log_dir) as wal:
        wal.append(opening("t1", "a", "b"))
        wal.append([record(R.PREPARED, "t1", participant="a")])
    with WriteAheadLog(log_dir) as wal:
        (view,) = wal.unfinished()
        assert view.participants["a"].state.value == "prepared"
        assert view.participants["b"].state.value == "enlisted"
        assert view.lsns == [1, 2, 3, 4]
        # and the reopened log keeps enforcing the table
        with pytest.raises(InvalidTransitionError):
            wal.append([record(R.DECIDED_COMMIT, "t1")])


def test_view_of_unknown_or_non_string_txid_is_none(make_wal: MakeWal) -> None:
    wal = make_wal()
    wal.append(begun("t1"))
    for txid in ("t2", "", "x" * 600, None, 42, b"t1"):
        assert wal.view(txid) is None  # type: ignore[arg-type]
        assert wal.participant(txid, "a") is None  # type: ignore[arg-type]


def test_views_are_copies(make_wal: MakeWal) -> None:
    wal = make_wal()
    wal.append(opening("t1", "a"))
    view = wal.view("t1")
    assert view is not None
    view.participants["a"].state = view.participants["a"].state.__class__("committed")
    view.lsns.append(99)
    fresh = wal.view("t1")
    assert fresh is not None
    assert fresh.participants["a"].state.value == "enlisted"
    assert fresh.lsns == [1, 2]


# --- group commit ---------------------------------------------------------------------


def test_concurrent_appenders_share_syncs(make_wal: MakeWal) -> None:
    wal = make_wal()
    threads_n, per_thread = 16, 25
    start = threading.Barrier(threads_n)
    errors: list[BaseException] = []
    got: list[int] = []
    got_lock = threading.Lock()

    def work(t: int) -> None:
        try:
            start.wait(10)
            for i in range(per_thread):
                lsns = wal.append(begun(f"t{t}-{i}"))
                assert lsns is not None
                with got_lock:
                    got.extend(lsns)
        except BaseException as exc:
            errors.append(exc)

    syncs_before = wal.syncs
    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    appends = threads_n * per_thread
    assert errors == []
    assert sorted(got) == list(range(1, appends + 1))
    syncs = wal.syncs - syncs_before
    assert 1 <= syncs < appends
    assert wal.records_written == appends
    assert len(wal.store.unfinished_txids()) == appends


# --- the directory lock ----------------------------------------------------------------


def test_second_log_on_same_directory_is_refused(make_wal: MakeWal, log_dir: Path) -> None:
    wal = make_wal()
    wal.append(begun("t1"))
    with pytest.raises(LogLockedError) as info:
        WriteAheadLog(log_dir)
    message = str(info.value)
    assert f"pid {os.getpid()}" in message
    assert str(log_dir) in message
    assert isinstance(info.value, LogError)
    holder = DirectoryLock.holder(log_dir)
    assert holder is not None and f"pid {os.getpid()}" in holder
    # the refused open did not disturb the holder
    assert wal.append(begun("t2")) == [2]


HOLDER = """
import sys, time
from dtc_wal.wal import WriteAheadLog
from dtc_wal.records import LogRecord
from dtc_wal.states import RecordType
wal = WriteAheadLog(sys.argv[1])
wal.append([LogRecord(RecordType.BEGUN, "held", time.time())])
print("ready", flush=True)
time.sleep(60)
"""


def test_lock_held_by_another_process_names_it_and_dies_with_it(log_dir: Path) -> None:
    root = Path(__file__).resolve().parent.parent
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
            WriteAheadLog(log_dir)
    finally:
        child.kill()  # SIGKILL: no cleanup; the kernel drops the flock
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    with WriteAheadLog(log_dir) as wal:
        assert [v.txid for v in wal.unfinished()] == ["held"]


def test_lock_is_released_on_close(log_dir: Path) -> None:
    wal = WriteAheadLog(log_dir)
    wal.close()
    assert DirectoryLock.holder(log_dir) is None
    with WriteAheadLog(log_dir) as again:
        assert again.append(begun("t1")) == [1]


# --- map growth -----------------------------------------------------------------------


def big(txid: str, size: int = 16 * 1024) -> list[Any]:
    return [record(R.BEGUN, txid), record(R.DECIDED_ABORT, txid, reason="x" * size)]


def test_map_grows_when_full(log_dir: Path) -> None:
    small = 256 * 1024
    with WriteAheadLog(log_dir, map_size=small, max_map_size=16 * MIB) as wal:
        assert wal.store.map_size == small
        for i in range(64):  # about 1 MiB of records
            wal.append(big(f"t{i}"))
        assert wal.store.map_size > small
        assert wal.store.map_size <= 16 * MIB
        assert wal.store.counts()["records"] == 128
    with WriteAheadLog(log_dir) as wal:
        assert len(wal.unfinished()) == 64


def test_full_log_raises_and_loses_nothing(log_dir: Path) -> None:
    size = 256 * 1024
    appended: list[str] = []
    with WriteAheadLog(log_dir, map_size=size, max_map_size=size) as wal:
        with pytest.raises(LogFullError, match="max_map_size") as info:
            for i in range(1000):
                wal.append(big(f"t{i}"))
                appended.append(f"t{i}")
        assert isinstance(info.value, LogError)
        assert 0 < len(appended) < 1000
        # the refused batch left the log consistent and readable
        assert len(wal.unfinished()) == len(appended)
        assert wal.view(f"t{len(appended)}") is None
        with pytest.raises(LogFullError):
            wal.append(big("again"))
    with WriteAheadLog(log_dir, max_map_size=64 * MIB) as wal:
        assert sorted(v.txid for v in wal.unfinished()) == sorted(appended)
        for txid in appended:
            assert types_of(wal.store.records_of(txid)) == [R.BEGUN, R.DECIDED_ABORT]
        for lsn, value in wal.store.iter_records():
            decode_record(value, lsn)
        # with a larger maximum the same log takes new records
        assert wal.append(big("after")) is not None


def test_impossible_history_on_disk_puts_only_its_transaction_aside(log_dir: Path) -> None:
    """A well-formed record that breaks the transition table (written behind the log's
    back) is found at start-up, not skipped: its transaction is damaged, the others load."""
    with WriteAheadLog(log_dir) as wal:
        wal.append(opening("t1", "a"))
        wal.append([record(R.PREPARED, "t1", participant="a")])
        wal.append(opening("t2", "b"))
    forged = record(R.ACKNOWLEDGED, "t1", participant="a", outcome=Outcome.COMMIT)
    env = lmdb.open(str(log_dir), max_dbs=8, subdir=True)
    with env.begin(write=True) as txn:
        txn.put(lsn_key(3), encode_record(forged), db=env.open_db(b"records", txn=txn))
    env.close()
    with WriteAheadLog(log_dir) as wal:
        assert [v.txid for v in wal.unfinished()] == ["t2"]
        [damage] = wal.damaged()
        assert (damage.txid, damage.lsn) == ("t1", 3)
        assert "breaks the transition table" in damage.reason and "ACKNOWLEDGED" in damage.reason
        assert wal.unfinished_count() == 2
        with pytest.raises(TransactionDamagedError, match="dtc repair") as info:
            wal.view("t1")
        assert (info.value.txid, info.value.lsn) == ("t1", 3)
        with pytest.raises(TransactionDamagedError):  # nothing is appended to it
            wal.append([record(R.DECIDED_ABORT, "t1", reason="test")])
        assert wal.append([record(R.PREPARED, "t2", participant="b")]) is not None
    assert raw_tables(log_dir)["records"][lsn_key(3)] == encode_record(forged)  # left as is


def test_corrupt_summary_puts_its_transaction_aside(log_dir: Path) -> None:
    with WriteAheadLog(log_dir) as wal:
        wal.append(begun("t1"))
        wal.append(begun("t2"))
    env = lmdb.open(str(log_dir), max_dbs=8, subdir=True)
    with env.begin(write=True) as txn:
        txn.put(b"t1", b"\x01\x00\x00", db=env.open_db(b"txns", txn=txn))
    env.close()
    with WriteAheadLog(log_dir) as wal:
        [damage] = wal.damaged()
        assert (damage.txid, damage.lsn) == ("t1", None)
        assert "summary of t1" in damage.reason and "truncated" in damage.reason
        assert [v.txid for v in wal.unfinished()] == ["t2"]


def test_mixed_lazy_and_waiting_appends_from_many_threads(log_dir: Path) -> None:
    """Whole transactions from 8 threads, their later records lazy: after flush every
    one is complete in the log, in order, and none is left in the index."""
    per_thread, threads_n = 30, 8
    errors: list[BaseException] = []
    with WriteAheadLog(log_dir) as wal:

        def work(t: int) -> None:
            try:
                for i in range(per_thread):
                    txid = f"t{t}-{i}"
                    wal.append(opening(txid, "a", "b"))
                    wal.append([record(R.DECIDED_ABORT, txid)], wait=False)
                    for name in ("a", "b"):
                        ack = record(
                            R.ACKNOWLEDGED, txid, participant=name, outcome=Outcome.ROLLBACK
                        )
                        wal.append([ack], wait=False)
                    wal.append([record(R.COMPLETED, txid)], wait=False)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        wal.flush()
        assert errors == []
        assert wal.unfinished() == []
        assert wal.store.unfinished_txids() == []
        counts = wal.store.counts()
        assert counts["transactions"] == per_thread * threads_n
        assert counts["records"] == per_thread * threads_n * 7
        assert wal.syncs < counts["records"]
    with WriteAheadLog(log_dir) as wal:
        assert wal.unfinished() == []
        view = wal.view("t3-17")
        assert view is not None and view.state is TxState.ABORTED
        assert types_of(wal.store.records_of("t3-17")) == [
            R.BEGUN,
            R.ENLISTED,
            R.ENLISTED,
            R.DECIDED_ABORT,
            R.ACKNOWLEDGED,
            R.ACKNOWLEDGED,
            R.COMPLETED,
        ]


def test_abandon_wakes_queued_appenders_and_writes_nothing_of_theirs(log_dir: Path) -> None:
    """abandon() is a crash: the batch being written lands, queued ones do not, and their
    appenders get CoordinatorClosedError instead of waiting forever."""
    wal = WriteAheadLog(log_dir)
    release, entered = hold_first_write(wal)
    results: dict[str, Any] = {}

    def run(key: str) -> None:
        try:
            results[key] = wal.append(begun(key))
        except Exception as exc:
            results[key] = exc

    leader = threading.Thread(target=run, args=("t-leader",))
    leader.start()
    assert entered.wait(10)
    follower = threading.Thread(target=run, args=("t-follower",))
    follower.start()
    assert wait_until(lambda: len(wal._queue) == 1)
    abandoner = threading.Thread(target=wal.abandon)
    abandoner.start()
    assert wait_until(lambda: "t-follower" in results)
    assert isinstance(results["t-follower"], CoordinatorClosedError)
    release.set()
    for thread in (leader, follower, abandoner):
        thread.join(10)
        assert not thread.is_alive()
    assert results["t-leader"] == [1]
    with WriteAheadLog(log_dir) as again:
        assert again.view("t-leader") is not None
        assert again.view("t-follower") is None


def test_close_refuses_new_appends_and_writes_what_was_queued(log_dir: Path) -> None:
    wal = WriteAheadLog(log_dir, lazy_delay=60)  # the flusher would not write in time
    wal.append(begun("t-lazy"), wait=False)
    wal.close()
    with pytest.raises(CoordinatorClosedError):
        wal.append(begun("t-late"))
    with WriteAheadLog(log_dir) as again:
        assert again.view("t-lazy") is not None


def test_log_path_that_is_a_file_raises_log_error(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    with pytest.raises(LogError, match=f"{path} is a file, not a directory"):
        WriteAheadLog(path / "log")
    with pytest.raises(LogError, match=f"{path} is a file, not a log directory"):
        WriteAheadLog(path)


def test_dedicated_writer_thread_mode_appends_the_same_way(tmp_path: Path) -> None:
    """writer="thread" (kept to measure the alternative) gives the same log."""
    with WriteAheadLog(tmp_path, writer="thread") as wal:
        results: list[Any] = []

        def run(i: int) -> None:
            results.append(wal.append(opening(f"t{i}", "a")))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        wal.append(begun("lazy"), wait=False)
        wal.flush()
        lsns = sorted(n for r in results for n in r)
        assert lsns == list(range(1, 33))
        assert wal.view("lazy") is not None
        assert wal.syncs <= 17
    with pytest.raises(ValueError):
        WriteAheadLog(tmp_path / "other", writer="nobody")


def test_repair_refuses_an_extra_lsn_of_another_transaction(tmp_path: Path) -> None:
    from dtc_wal.wal.repair import drop_transaction

    from dtc_wal.errors import TransactionStateError

    with WriteAheadLog(tmp_path) as wal:
        wal.append(opening("victim", "a"))  # LSNs 1-2
        wal.append(opening("bystander", "b"))  # LSNs 3-4
    with pytest.raises(TransactionStateError, match="bystander"):
        drop_transaction(tmp_path, "victim", extra_lsns=[3], force=True)
    with WriteAheadLog(tmp_path) as wal:  # nothing was changed
        assert wal.view("bystander") is not None
        assert wal.view("victim") is not None


def test_read_only_open_of_a_foreign_lmdb_raises_log_error(tmp_path: Path) -> None:
    """An LMDB directory without the log's tables is not a log: LogError, not lmdb's."""
    env = lmdb.open(str(tmp_path), max_dbs=2)
    env.open_db(b"something-else")
    env.close()
    with pytest.raises(LogError, match="cannot open log"):
        LogStore(tmp_path, readonly=True)
    with LogStore(tmp_path / "fresh") as store:  # a context manager, closed on exit
        assert store.last_lsn == 0
