"""Group commit against its store contract (BatchStore), independent of LMDB.

The store here is a small real implementation of the contract (a list that counts its
commits), the way a PostgreSQL backend will plug in; the LMDB backend runs the same code
in the contract suite.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from dtc_wal.errors import CoordinatorClosedError, LogFullError
from dtc_wal.log.group_commit import GroupCommit


class ListStore:
    """Commits batches of str entries to a list; refuses entries starting with "bad";
    fails whole batches while ``full`` is set."""

    def __init__(self, delay: float = 0.0) -> None:
        self.committed: list[str] = []
        self.batches: list[list[str]] = []
        self.full = False
        self.delay = delay

    def write_batch(self, batch: Sequence[str]) -> list[BaseException | None]:
        if self.delay:
            time.sleep(self.delay)  # a sync, during which others queue up
        if self.full:
            raise LogFullError("full; nothing logged was lost")
        outcome: list[BaseException | None] = []
        for item in batch:
            if item.startswith("bad"):
                outcome.append(ValueError(f"refused {item}"))
            else:
                outcome.append(None)
                self.committed.append(item)
        self.batches.append(list(batch))
        return outcome


@pytest.fixture
def store() -> ListStore:
    return ListStore()


def run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_one_caller_writes_its_own_entry_at_once(store: ListStore) -> None:
    commit = GroupCommit(store)
    commit.append("a")
    assert store.batches == [["a"]] and commit.batches == 1
    commit.close()


def test_concurrent_appenders_share_batches() -> None:
    store = ListStore(delay=0.002)
    commit = GroupCommit(store)

    def work(i: int) -> None:
        for n in range(5):
            commit.append(f"{i}-{n}")

    errors = run_threads(32, work)
    commit.close()
    assert errors == []
    assert sorted(store.committed) == sorted(f"{i}-{n}" for i in range(32) for n in range(5))
    assert len(store.batches) < 160 / 4


def test_a_refused_entry_fails_only_its_appender() -> None:
    store = ListStore(delay=0.002)
    commit = GroupCommit(store)
    errors = run_threads(8, lambda i: commit.append("bad-one" if i == 3 else f"ok-{i}"))
    commit.close()
    assert [str(e) for e in errors] == ["refused bad-one"]
    assert sorted(store.committed) == sorted(f"ok-{i}" for i in range(8) if i != 3)


def test_a_failed_batch_goes_to_every_entry_and_writing_goes_on(store: ListStore) -> None:
    commit = GroupCommit(store, lazy_delay=60.0)
    store.full = True
    told: list[BaseException | None] = []
    commit.submit("lazy", durable=False, on_done=told.append)
    with pytest.raises(LogFullError):
        commit.append("durable")  # its batch carries the lazy entry too
    assert len(told) == 1 and isinstance(told[0], LogFullError)
    store.full = False
    commit.append("after")
    assert store.committed == ["after"]
    commit.close()


def test_lazy_entries_ride_the_next_durable_append(store: ListStore) -> None:
    commit = GroupCommit(store, lazy_delay=60.0)
    commit.append("lazy-1", durable=False)
    commit.append("lazy-2", durable=False)
    assert store.batches == []
    commit.append("durable")
    assert store.batches == [["lazy-1", "lazy-2", "durable"]]
    commit.close()


def test_lazy_entries_are_written_by_the_flusher_after_the_delay(store: ListStore) -> None:
    commit = GroupCommit(store, lazy_delay=0.05)
    start = time.monotonic()
    commit.append("lazy", durable=False)
    while not store.committed:
        time.sleep(0.001)
        assert time.monotonic() - start < 5
    assert time.monotonic() - start >= 0.04
    commit.close()


def test_a_durable_submit_is_written_without_waiting_for_the_delay(store: ListStore) -> None:
    commit = GroupCommit(store, lazy_delay=60.0)
    done = threading.Event()
    commit.submit("now", durable=True, on_done=lambda _e: done.set())
    assert done.wait(5)
    assert store.committed == ["now"]
    commit.close()


def test_flush_waits_for_lazy_entries(store: ListStore) -> None:
    commit = GroupCommit(store, lazy_delay=60.0)
    commit.flush()  # nothing queued: returns at once
    commit.append("lazy", durable=False)
    commit.flush()
    assert store.committed == ["lazy"]
    commit.close()


def test_a_lazy_refusal_without_a_callback_is_logged(
    store: ListStore, caplog: pytest.LogCaptureFixture
) -> None:
    commit = GroupCommit(store, describe=lambda item: f"entry {item}")
    commit.append("bad-lazy", durable=False)
    commit.flush()
    assert "entry bad-lazy" in caplog.text and "refused bad-lazy" in caplog.text
    commit.close()


def test_a_raising_callback_is_logged_and_ignored(
    store: ListStore, caplog: pytest.LogCaptureFixture
) -> None:
    commit = GroupCommit(store)
    caplog.set_level(logging.ERROR, logger="dtc_wal.log")

    def explode(_error: BaseException | None) -> None:
        raise RuntimeError("callback bug")

    commit.submit("a", durable=True, on_done=explode)
    commit.append("b")
    commit.flush()
    assert store.committed == ["a", "b"]
    assert "callback raised" in caplog.text
    commit.close()


def test_close_writes_what_is_queued_and_refuses_more(store: ListStore) -> None:
    commit = GroupCommit(store, lazy_delay=60.0, closed_message="the test log is closed")
    commit.append("lazy", durable=False)
    commit.close()
    assert store.committed == ["lazy"]
    with pytest.raises(CoordinatorClosedError, match="the test log is closed"):
        commit.append("late")
    commit.close()


def test_close_without_writing_drops_the_queue(store: ListStore) -> None:
    commit = GroupCommit(store, lazy_delay=60.0)
    told: list[BaseException | None] = []
    commit.submit("lost", durable=False, on_done=told.append)
    commit.close(write_pending=False)
    assert store.committed == []
    assert len(told) == 1 and isinstance(told[0], CoordinatorClosedError)


class SizedStore(ListStore):
    """Full for any batch holding an entry longer than ``limit`` characters, as a map with
    room for small writes only is."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write_batch(self, batch: Sequence[str]) -> list[BaseException | None]:
        if any(len(item) > self.limit for item in batch):
            raise LogFullError("full; nothing logged was lost")
        return super().write_batch(batch)


def test_a_full_batch_retried_entry_by_entry_fails_a_transactions_later_entries_too() -> None:
    """Entries are ``txid:record``. A batch that does not fit is written entry by entry:
    the small entries of other transactions are written; after a transaction's entry
    failed, its later entries fail with that same LogFullError, unwritten (they would not
    follow on what the log holds)."""
    store = SizedStore(limit=12)
    commit = GroupCommit(store, lazy_delay=60, owners=lambda item: {item.split(":")[0]})
    told: dict[str, BaseException | None] = {}
    try:
        for item in ("t1:opened-and-much-too-long", "t2:small", "t1:decided"):
            commit.submit(item, durable=False, on_done=lambda e, i=item: told.setdefault(i, e))
        commit.flush()
    finally:
        commit.close()
    assert store.committed == ["t2:small"]
    assert told["t2:small"] is None
    first, later = told["t1:opened-and-much-too-long"], told["t1:decided"]
    assert isinstance(first, LogFullError) and later is first
