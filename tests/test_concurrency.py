"""Many threads, many transactions, one coordinator: every transaction ends consistent."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable

from helpers import Journal, RecordingParticipant, saga_functions

from dtc_wal import ManualClock, Outcome, TransactionAborted, TransactionCoordinator, TxState

TRANSACTIONS = 200
THREADS = 16
PARTICIPANTS = 3


def test_200_concurrent_transactions_from_16_threads(
    make_coord: Callable[..., TransactionCoordinator], journal: Journal
) -> None:
    coord = make_coord(clock=ManualClock(), prepare_timeout=30.0)
    start = threading.Barrier(THREADS)
    started: threading.local = threading.local()

    def run(i: int) -> tuple[str, Outcome, bool]:
        if not getattr(started, "done", False):  # line the workers up once
            started.done = True
            start.wait(30)
        refuse = i % 4 == 3
        txid = coord.begin_transaction()
        for p in range(PARTICIPANTS):
            participant = RecordingParticipant(
                f"p{p}", journal, vote_no=refuse and p == PARTICIPANTS - 1
            )
            coord.enlist_participant(txid, participant)
        try:
            coord.commit_transaction(txid, data={"i": i})
        except TransactionAborted:
            return txid, Outcome.ABORT, refuse
        return txid, Outcome.COMMIT, refuse

    syncs_before = coord.log.syncs
    with cf.ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(run, range(TRANSACTIONS)))
    syncs = coord.log.syncs - syncs_before

    assert len({txid for txid, _, _ in results}) == TRANSACTIONS
    committed = 0
    for txid, outcome, refuse in results:
        assert outcome is (Outcome.ABORT if refuse else Outcome.COMMIT)
        calls = journal.of(txid)
        phase2 = {what for _, what in calls if what != "prepare"}
        # every participant saw only the outcome the caller was told
        assert phase2 == {"commit" if outcome is Outcome.COMMIT else "rollback"}, calls
        for p in range(PARTICIPANTS):
            whats = journal.what(f"p{p}", txid)
            phase_two = "commit" if outcome is Outcome.COMMIT else "rollback"
            assert whats == ["prepare", phase_two], (txid, whats)
        committed += outcome is Outcome.COMMIT
    assert committed == TRANSACTIONS - TRANSACTIONS // 4

    assert coord.unfinished() == []
    for txid, outcome, _ in results:
        expected = TxState.COMMITTED if outcome is Outcome.COMMIT else TxState.ABORTED
        assert coord.state(txid) is expected
    coord.flush()
    info = coord.log.info()
    assert (info.unfinished, info.transactions) == (0, TRANSACTIONS)
    assert info.records == 3 * TRANSACTIONS  # Opened, Decided, Ended: committed or not
    # group commit: far fewer syncs than transactions, though each needs 1-2 durable waits
    assert syncs < TRANSACTIONS


def test_concurrent_sagas_and_two_phase_transactions(
    make_coord: Callable[..., TransactionCoordinator], journal: Journal
) -> None:
    coord = make_coord(clock=ManualClock())

    def run(i: int) -> tuple[str, bool]:
        txid = coord.begin_transaction()
        if i % 2:
            for name in ("a", "b", "c"):
                fail = i % 6 == 1 and name == "b"
                coord.register_participant(txid, name, *saga_functions(name, journal, fail=fail))
        else:
            for name in ("a", "b"):
                coord.enlist_participant(txid, RecordingParticipant(name, journal))
        try:
            coord.commit_transaction(txid)
        except TransactionAborted:
            return txid, False
        return txid, True

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(60)))

    for i, (txid, ok) in enumerate(results):
        calls = journal.of(txid)
        if i % 2 and not ok:
            assert i % 6 == 1
            assert calls == [
                ("a", "commit"),
                ("b", "commit"),
                ("b", "rollback"),
                ("a", "rollback"),
            ]
        elif i % 2:
            assert calls == [("a", "commit"), ("b", "commit"), ("c", "commit")]
        else:
            assert ok
            assert sorted(calls) == [
                ("a", "commit"),
                ("a", "prepare"),
                ("b", "commit"),
                ("b", "prepare"),
            ]
    assert coord.unfinished() == []
