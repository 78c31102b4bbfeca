"""The TransactionLog contract, run against every backend (tests/log/backends.py).

Real stores in temporary locations; crash tests kill a real child process with SIGKILL.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable

import pytest

from dtc_wal.errors import (
    CoordinatorClosedError,
    InvalidTransactionIdError,
    InvalidTransitionError,
    LogFullError,
    RecordDamagedError,
    UnencodableDataError,
)
from dtc_wal.log import Compacted, Damage, StoredTransaction, TransactionLog
from dtc_wal.protocol.records import (
    Acked,
    Failed,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    StepDone,
)

from .backends import Backend
from .conftest import MEMBERS, child, decided, ended, new_txid, opened

OpenLog = Callable[..., TransactionLog]


def test_it_is_a_transaction_log(open_log: OpenLog) -> None:
    assert isinstance(open_log(), TransactionLog)


# -- durability -------------------------------------------------------------------------


def test_durable_append_survives_close_and_reopen(open_log: OpenLog) -> None:
    log = open_log()
    txid = new_txid()
    records = (opened(txid), decided(txid))
    log.append(records[:1])
    log.append(records[1:])
    log.close()
    assert open_log().read(txid) == StoredTransaction(txid, records)


def test_durable_append_survives_sigkill_of_the_appender(backend: Backend, where: str) -> None:
    proc = child("append", backend.name, where, "100000")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    acknowledged = []
    for line in proc.stdout:
        acknowledged.append(line.split()[1])
        if len(acknowledged) == 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    log = backend.open(where)
    try:
        for txid in acknowledged:
            stored = log.read(txid)
            assert stored is not None and stored.damage is None, txid
            assert [type(r).__name__ for r in stored.records][:2] == ["Opened", "Decided"]
        # Whatever else the child appended is whole: no damage anywhere after the kill.
        assert all(t.damage is None for t in log.transactions())
        unfinished = [t.txid for t in log.unfinished()]
        assert unfinished == sorted(unfinished)  # the child opened them in txid order
    finally:
        log.close()


def test_lazy_append_is_durable_after_flush(open_log: OpenLog) -> None:
    log = open_log(lazy_delay=60.0)  # only the flush can have written it
    txid = new_txid()
    log.append([opened(txid)])
    log.append([ended(txid)], durable=False)
    log.flush()
    stored = log.read(txid)
    assert stored is not None and stored.finished


def test_lazy_append_is_written_by_the_flusher_without_another_append(
    open_log: OpenLog,
) -> None:
    log = open_log()
    txid = new_txid()
    log.append([opened(txid)], durable=False)
    deadline = time.monotonic() + 5
    while log.read(txid) is None:
        assert time.monotonic() < deadline, "the lazy append was never written"
        time.sleep(0.001)


def test_lazy_append_is_written_by_close(open_log: OpenLog) -> None:
    log = open_log()
    txid = new_txid()
    log.append([opened(txid), ended(txid)], durable=False)
    log.close()
    stored = open_log().read(txid)
    assert stored is not None and stored.finished


def test_a_durable_append_makes_earlier_lazy_ones_durable(open_log: OpenLog) -> None:
    log = open_log()
    lazy, durable = new_txid(), new_txid()
    log.append([opened(lazy)], durable=False)
    log.append([opened(durable)])
    assert log.read(lazy) is not None


def test_many_threads_share_syncs(open_log: OpenLog) -> None:
    log = open_log()
    threads, per_thread = 32, 10
    before = log.info().syncs
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                txid = new_txid()
                log.append([opened(txid)])
                log.append([decided(txid)])
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    appends = threads * per_thread * 2
    syncs = log.info().syncs - before
    assert 0 < syncs < appends / 2, f"{syncs} syncs for {appends} durable appends"
    assert sum(1 for _ in log.unfinished()) == threads * per_thread


def test_submit_tells_when_durable(open_log: OpenLog) -> None:
    log = open_log()
    txid = new_txid()
    seen: list[tuple[BaseException | None, StoredTransaction | None]] = []
    done = threading.Event()

    def on_done(error: BaseException | None) -> None:
        seen.append((error, log.read(txid)))
        done.set()

    log.submit([opened(txid)], durable=True, on_done=on_done)
    assert done.wait(5)
    error, stored = seen[0]
    assert error is None
    assert stored is not None and stored.records == (opened(txid, stored.records[0].at),)


def test_submit_lazy_tells_once_written(open_log: OpenLog) -> None:
    log = open_log()
    txid = new_txid()
    outcomes: list[BaseException | None] = []
    log.submit([opened(txid)], durable=False, on_done=outcomes.append)
    log.flush()
    assert outcomes == [None]
    assert log.read(txid) is not None


def test_submit_tells_a_refusal(open_log: OpenLog) -> None:
    log = open_log()
    done = threading.Event()
    outcomes: list[BaseException | None] = []

    def on_done(error: BaseException | None) -> None:
        outcomes.append(error)
        done.set()

    log.submit([ended("never-opened")], durable=True, on_done=on_done)
    assert done.wait(5)
    assert isinstance(outcomes[0], InvalidTransitionError)


# -- what the log refuses -----------------------------------------------------------------


def test_an_encoding_error_refuses_only_its_own_append(open_log: OpenLog) -> None:
    log = open_log()
    good = [new_txid() for _ in range(8)]
    bad = new_txid()
    barrier = threading.Barrier(len(good) + 1)
    errors: dict[str, BaseException] = {}

    def append(txid: str, data: object) -> None:
        barrier.wait()
        try:
            log.append([Opened(txid, time.time(), Mode.SAGA, MEMBERS, {"x": data})])
        except BaseException as exc:
            errors[txid] = exc

    pool = [threading.Thread(target=append, args=(t, 1)) for t in good]
    pool.append(threading.Thread(target=append, args=(bad, object())))
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert set(errors) == {bad}
    assert isinstance(errors[bad], UnencodableDataError)
    assert bad in str(errors[bad])
    assert log.read(bad) is None
    assert all(log.read(t) is not None for t in good)
    log.close()
    reopened = open_log()
    assert reopened.read(bad) is None and all(reopened.read(t) for t in good)


def test_a_lazy_encoding_error_raises_to_its_caller(open_log: OpenLog) -> None:
    log = open_log()
    txid = new_txid()
    with pytest.raises(UnencodableDataError):
        log.append(
            [Opened(txid, 1.0, Mode.SAGA, (MemberSpec("a", "f", {"p": {1, 2}}),))], durable=False
        )
    log.flush()
    assert log.read(txid) is None


def test_order_refusals_refuse_only_their_append(open_log: OpenLog) -> None:
    log = open_log()
    txid = new_txid()
    log.append([opened(txid)])
    with pytest.raises(InvalidTransitionError, match="already holds"):
        log.append([opened(txid)])
    with pytest.raises(InvalidTransitionError, match="never opened"):
        log.append([decided("no-such-tx")])
    # A refused record refuses its whole append: the first record is not written either.
    with pytest.raises(InvalidTransitionError):
        log.append([decided(txid), ended("no-such-tx")])
    log.append([ended(txid)])
    with pytest.raises(InvalidTransitionError, match="already ended"):
        log.append([decided(txid)])
    stored = log.read(txid)
    assert stored is not None
    assert [type(r).__name__ for r in stored.records] == ["Opened", "Ended"]


@pytest.mark.parametrize(
    "txid", ["", "x" * 512, "\ud800-lone-surrogate", 42], ids=["empty", "long", "surrogate", "int"]
)
def test_a_txid_the_log_cannot_store_is_refused(open_log: OpenLog, txid: object) -> None:
    log = open_log()
    with pytest.raises(InvalidTransactionIdError) as info:
        log.append([Opened(txid, 1.0, Mode.TWO_PHASE, MEMBERS)])  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert log.read(txid) is None  # type: ignore[arg-type]
    assert log.info().transactions == 0


def test_any_storable_txid_round_trips(open_log: OpenLog) -> None:
    log = open_log()
    txids = ["é" * 255, "a\x00b", "🙂 with spaces", "x" * 511]
    for txid in txids:
        log.append([opened(txid, 1.0)])
    assert sorted(t.txid for t in log.unfinished()) == sorted(txids)
    for txid in txids:
        assert log.read(txid) == StoredTransaction(txid, (opened(txid, 1.0),))


def test_append_after_close_raises(open_log: OpenLog) -> None:
    log = open_log()
    log.close()
    log.close()  # idempotent
    with pytest.raises(CoordinatorClosedError):
        log.append([opened(new_txid())])


# -- reading ------------------------------------------------------------------------------


def test_unfinished_after_reopen_oldest_first_with_records_in_order(open_log: OpenLog) -> None:
    log = open_log()
    first, done, second = new_txid(), new_txid(), new_txid()
    log.append([opened(second, 1.0)])  # opened first, though its id sorts last
    log.append([opened(first, 2.0), opened(done, 3.0)])
    log.append([Failed(second, 4.0, 1, Op.PREPARE, "timeout", 3)])
    log.append([decided(second, 5.0)])
    log.append([ended(done, 6.0)])
    log.close()
    unfinished = list(open_log().unfinished())
    assert [t.txid for t in unfinished] == [second, first]
    assert unfinished[0].records == (
        opened(second, 1.0),
        Failed(second, 4.0, 1, Op.PREPARE, "timeout", 3),
        decided(second, 5.0),
    )
    assert not unfinished[0].finished and unfinished[1].damage is None


def test_unfinished_iterates_past_one_read_chunk(open_log: OpenLog) -> None:
    log = open_log()
    txids = [new_txid() for _ in range(300)]
    for i in range(0, 300, 50):
        log.append([opened(t, 1.0) for t in txids[i : i + 50]])
    assert [t.txid for t in log.unfinished()] == txids
    assert [t.txid for t in log.transactions()] == sorted(txids)


def test_every_record_type_round_trips(open_log: OpenLog) -> None:
    log = open_log()
    txid = new_txid()
    records = (
        Opened(txid, 1.0, Mode.SAGA, MEMBERS, {"order": [1, 2], "bin": b"\x00\xff"}),
        StepDone(txid, 2.0, 0),
        Failed(txid, 3.0, 1, Op.ACTION, "RuntimeError: boom", 4),
        Acked(txid, 4.0, ((0, MemberState.ROLLED_BACK),)),
    )
    for record in records:
        log.append([record])
    log.close()
    assert open_log().read(txid) == StoredTransaction(txid, records)


def test_read_unknown_or_impossible_txid_is_none(open_log: OpenLog) -> None:
    log = open_log()
    assert log.read("never") is None
    assert log.read("x" * 1000) is None
    assert log.read(7) is None  # type: ignore[arg-type]


def test_transactions_filters_by_prefix(open_log: OpenLog) -> None:
    log = open_log()
    for txid in ("order-1", "order-2", "orders", "refund-1", "orde"):
        log.append([opened(txid, 1.0)])
    log.append([ended("order-2")])
    found = {t.txid: t.finished for t in log.transactions("order-")}
    assert found == {"order-1": False, "order-2": True}
    assert [t.txid for t in log.transactions("zzz")] == []
    assert len(list(log.transactions())) == 5


def test_a_damaged_record_sets_aside_only_its_transaction(
    open_log: OpenLog, backend: Backend, where: str
) -> None:
    log = open_log()
    before, victim, after = new_txid(), new_txid(), new_txid()
    for txid in (before, victim, after):
        log.append([opened(txid)])
        log.append([decided(txid)])
    log.close()
    backend.damage(where, victim, 1)
    log = open_log()
    unfinished = {t.txid: t for t in log.unfinished()}
    assert set(unfinished) == {before, victim, after}
    damaged = unfinished[victim]
    assert isinstance(damaged.damage, RecordDamagedError)
    assert (damaged.damage.txid, damaged.damage.seq) == (victim, 1)
    assert damaged.damage.damage == Damage.BAD_CHECKSUM
    assert victim in str(damaged.damage) and "record 1" in str(damaged.damage)
    assert [type(r).__name__ for r in damaged.records] == ["Opened"]
    assert not damaged.finished
    for txid in (before, after):
        assert unfinished[txid].damage is None and len(unfinished[txid].records) == 2
    stored = log.read(victim)
    assert stored is not None and stored.damage is not None
    assert [t.txid for t in log.transactions() if t.damage] == [victim]
    # The rest of the log stays writable, the damaged transaction's neighbours too.
    log.append([ended(after)])
    assert log.read(after) is not None and log.read(after).finished  # type: ignore[union-attr]


# -- compaction and capacity ----------------------------------------------------------------


def test_compact_deletes_finished_transactions_older_than_the_limit(open_log: OpenLog) -> None:
    log = open_log()
    old, young, open_old = new_txid(), new_txid(), new_txid()
    log.append([opened(old, 100.0), opened(open_old, 100.0)])
    log.append([ended(old, 200.0)])
    log.append([opened(young, 300.0)])
    log.append([ended(young, 400.0)])
    assert log.compact(before=350.0) == Compacted(transactions=1, records=2)
    assert log.read(old) is None
    assert log.read(young) is not None and log.read(open_old) is not None
    assert log.compact(before=350.0) == Compacted(0, 0)
    assert log.info().transactions == 2
    log.append([opened(old, 500.0)])  # a compacted txid is free again
    log.close()
    reopened = open_log()
    assert [t.txid for t in reopened.unfinished()] == [open_old, old]
    assert reopened.compact(before=10_000.0) == Compacted(1, 2)


def test_compact_interleaves_with_appends(open_log: OpenLog) -> None:
    log = open_log()
    txids = [new_txid() for _ in range(1200)]
    for i in range(0, len(txids), 100):
        chunk = txids[i : i + 100]
        log.append([opened(t, 1.0) for t in chunk] + [ended(t, 2.0) for t in chunk])
    stop = threading.Event()
    appended: list[str] = []

    def append() -> None:
        while not stop.is_set():
            txid = new_txid()
            log.append([opened(txid, 5.0)])
            appended.append(txid)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        result = log.compact(before=3.0)
    finally:
        stop.set()
        writer.join()
    assert result == Compacted(len(txids), 2 * len(txids))
    assert all(log.read(t) is None for t in txids)
    assert all(log.read(t) is not None for t in appended)


def test_full_log_raises_log_full_with_nothing_lost(open_log: OpenLog) -> None:
    log = open_log(small=True)
    big = {"blob": b"x" * 4000}
    finished = [new_txid() for _ in range(40)]
    for txid in finished:
        log.append([Opened(txid, 1.0, Mode.TWO_PHASE, MEMBERS, big), ended(txid, 2.0)])
    stored: list[str] = []
    with pytest.raises(LogFullError) as info:
        for _ in range(10_000):
            txid = new_txid()
            log.append([Opened(txid, 3.0, Mode.TWO_PHASE, MEMBERS, big)])
            stored.append(txid)
    assert "nothing logged was lost" in str(info.value)
    assert len(stored) > 10
    for txid in stored:
        assert log.read(txid) is not None
    # A full log can still be compacted, and the freed space takes appends again.
    assert log.compact(before=2.5).transactions == len(finished)
    more = [new_txid() for _ in range(20)]
    for txid in more:
        log.append([Opened(txid, 3.0, Mode.TWO_PHASE, MEMBERS, big)])
    log.close()
    # Reopened with room to grow, it lost nothing either.
    log = open_log()
    txid = new_txid()
    log.append([opened(txid)])
    assert {t.txid for t in log.unfinished()} == {*stored, *more, txid}


def test_a_full_log_fails_the_waiters_of_the_batch_and_keeps_going(open_log: OpenLog) -> None:
    log = open_log(small=True)
    done = threading.Event()
    outcomes: list[BaseException | None] = []

    def on_done(error: BaseException | None) -> None:
        outcomes.append(error)
        done.set()

    huge = {"blob": b"x" * (2 * 1024 * 1024)}
    log.submit([Opened(new_txid(), 1.0, Mode.SAGA, MEMBERS, huge)], durable=True, on_done=on_done)
    assert done.wait(5)
    assert isinstance(outcomes[0], LogFullError)
    txid = new_txid()
    log.append([opened(txid)])
    assert log.read(txid) is not None


# -- concurrency with readers ------------------------------------------------------------------


def test_a_reader_process_reads_while_a_writer_appends(
    open_log: OpenLog, backend: Backend, where: str
) -> None:
    log = open_log()
    log.append([opened(new_txid())])
    reader = child("read", backend.name, where, "1.5")
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 1.0
    appended = 1
    while time.monotonic() < deadline:
        txid = new_txid()
        log.append([opened(txid), decided(txid)])
        log.append([ended(txid)], durable=False)
        appended += 1
    out, err = reader.communicate(timeout=30)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["damage"] == [] and not report["shrank"]
    assert report["passes"] > 1 and 1 <= report["most"] <= appended


def test_info_reports_counts_and_format(open_log: OpenLog) -> None:
    log = open_log()
    empty = log.info()
    assert (empty.records, empty.transactions, empty.unfinished) == (0, 0, 0)
    txid = new_txid()
    log.append([opened(txid), decided(txid)])
    info = log.info()
    assert info.format == 2
    assert (info.records, info.transactions, info.unfinished) == (2, 1, 1)
    assert info.syncs > empty.syncs and info.last_sync is not None
    assert 0 < info.map_used <= info.map_size <= info.max_map_size
    assert info.size > 0
