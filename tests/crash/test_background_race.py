"""A recovery pass must not touch a transaction that a caller begins while the pass runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from helpers import Journal, RecordingParticipant

from dtc_wal import TransactionCoordinator, TxState
from dtc_wal.log import StoredTransaction
from dtc_wal.log.lmdb import LmdbLog


def test_a_pass_leaves_a_transaction_begun_during_it_to_its_caller(
    make_coord: Callable[..., TransactionCoordinator], monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = make_coord(recovery_interval=None, zombie_timeout=None, prepare_timeout=10.0)
    journal = Journal()
    entered, release = threading.Event(), threading.Event()

    def on_prepare(txid: str, data: object) -> None:
        entered.set()
        assert release.wait(10)

    participant = RecordingParticipant("p", journal, on_prepare=on_prepare)
    errors: list[BaseException] = []
    newcomer: list[str] = []
    threads: list[threading.Thread] = []
    assert isinstance(coord.log, LmdbLog)  # format 2
    original = coord.log.unfinished

    def commit(txid: str) -> None:
        try:
            coord.commit_transaction(txid)
        except BaseException as exc:
            errors.append(exc)

    def unfinished_while_a_caller_starts() -> Iterator[StoredTransaction]:
        # Another thread begins a transaction and is inside prepare (its Opened record is
        # durable) just as the pass reads the log's unfinished transactions.
        if not newcomer:
            txid = coord.begin_transaction()
            coord.enlist_participant(txid, participant)
            newcomer.append(txid)
            threads.append(threading.Thread(target=commit, args=(txid,)))
            threads[0].start()
            assert entered.wait(10)
            stored = coord.log.read(txid)
            assert stored is not None and not stored.finished  # the pass will see it
        return original()

    monkeypatch.setattr(coord.log, "unfinished", unfinished_while_a_caller_starts)
    report = coord.recover_now()
    release.set()
    threads[0].join(10)

    txid = newcomer[0]
    assert txid not in {t.txid for t in report.transactions}
    assert errors == []
    assert journal.what("p", txid) == ["prepare", "commit"]
    assert coord.state(txid) is TxState.COMMITTED
