"""``TransactionCoordinator.stats()``: counters since open and gauges, for monitoring."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from helpers import FOREVER, Failures, Journal, RecordingParticipant, saga_functions

from dtc_wal import (
    CommitIncompleteError,
    CoordinatorStats,
    ManualClock,
    ParticipantRegistry,
    TransactionAborted,
    TransactionCoordinator,
)

MakeCoord = Callable[..., TransactionCoordinator]


def _commit(coord: TransactionCoordinator, *participants: object) -> str:
    txid = coord.begin_transaction()
    for p in participants:
        coord.enlist_participant(txid, p)
    coord.commit_transaction(txid)
    return txid


def test_a_fresh_coordinator_counts_its_opening_recovery_pass(make_coord: MakeCoord) -> None:
    stats = make_coord(recovery_interval=None).stats()
    assert isinstance(stats, CoordinatorStats)
    assert stats.recovery_passes == 1
    assert (stats.begun, stats.committed, stats.aborted, stats.incomplete) == (0, 0, 0, 0)
    assert (stats.live, stats.unfinished, stats.in_doubt, stats.recovered) == (0, 0, 0, 0)
    assert 0 < stats.log_bytes_used <= stats.log_map_size


def test_commits_aborts_and_rollbacks_are_counted(make_coord: MakeCoord, journal: Journal) -> None:
    coord = make_coord(recovery_interval=None, clock=ManualClock())
    before = coord.stats()
    _commit(coord, RecordingParticipant("a", journal), RecordingParticipant("b", journal))
    _commit(coord, RecordingParticipant("solo", journal))  # plain: no one-phase method
    with pytest.raises(TransactionAborted):
        _commit(coord, RecordingParticipant("a", journal), RecordingParticipant("no", vote_no=True))
    rolled = coord.begin_transaction()
    coord.enlist_participant(rolled, RecordingParticipant("a", journal))
    open_one = coord.begin_transaction()
    saga = coord.begin_transaction()
    for name in ("s1", "s2"):
        coord.register_participant(saga, name, *saga_functions(name, journal))
    coord.commit_transaction(saga)

    mid = coord.stats()
    assert mid.live == 2  # `rolled` and `open_one`
    coord.rollback_transaction(rolled)
    coord.flush()
    stats = coord.stats()

    assert stats.begun == 6
    assert stats.committed == 3
    assert stats.aborted == 2
    assert stats.incomplete == 0
    assert stats.live == 1
    assert stats.unfinished == 0  # `open_one` has written nothing yet
    assert stats.log_records > before.log_records
    assert stats.log_syncs >= stats.committed  # every commit decision was forced
    assert stats.log_batches >= stats.log_syncs
    coord.rollback_transaction(open_one)
    assert set(stats.to_dict()) == set(CoordinatorStats.__dataclass_fields__)


def test_incomplete_commit_is_in_doubt_until_recovery_finishes_it(
    make_coord: MakeCoord, journal: Journal
) -> None:
    coord = make_coord(recovery_interval=None, clock=ManualClock(), max_retries=0)
    down = Failures(FOREVER)
    stuck = RecordingParticipant("stuck", journal, commit_failures=down)
    with pytest.raises(CommitIncompleteError):
        _commit(coord, RecordingParticipant("a", journal), stuck)
    stats = coord.stats()
    assert (stats.committed, stats.incomplete, stats.unfinished) == (1, 1, 1)
    assert stats.in_doubt == 0  # no recovery pass has tried it yet

    coord.recover_now()
    stats = coord.stats()
    assert (stats.recovery_passes, stats.in_doubt, stats.recovered) == (2, 1, 0)

    down.times = 0  # the participant is back
    coord.recover_now()
    stats = coord.stats()
    assert (stats.recovery_passes, stats.in_doubt, stats.recovered) == (3, 0, 1)
    coord.flush()
    assert coord.stats().unfinished == 0


def test_zombies_reaped_are_counted_as_aborted_too(make_coord: MakeCoord) -> None:
    clock = ManualClock()
    coord = make_coord(recovery_interval=None, clock=clock, zombie_timeout=60)
    coord.begin_transaction()
    clock.advance(61)
    assert len(coord.reap_zombies()) == 1
    stats = coord.stats()
    assert (stats.zombies_reaped, stats.aborted, stats.live) == (1, 1, 0)


def test_recovery_on_open_counts_what_it_finished(
    make_coord: MakeCoord, registry: ParticipantRegistry, journal: Journal
) -> None:
    down = Failures(FOREVER)
    registry.register("flaky", lambda **_: RecordingParticipant("f", journal, commit_failures=down))
    first = make_coord(recovery_interval=None, clock=ManualClock(), max_retries=0)
    txid = first.begin_transaction()
    first.enlist_participant(txid, "flaky")
    first.enlist_participant(txid, RecordingParticipant("a", journal))
    with pytest.raises(CommitIncompleteError):
        first.commit_transaction(txid)
    first.close()

    down.times = 0
    second = make_coord(recovery_interval=None)
    second.flush()  # the completion records are lazy
    stats = second.stats()
    assert (stats.recovery_passes, stats.recovered, stats.unfinished) == (1, 1, 0)
    assert stats.begun == 0  # counters are per coordinator, not read from the log


def test_counters_are_exact_under_concurrency(make_coord: MakeCoord) -> None:
    coord = make_coord(recovery_interval=None)
    threads, per_thread = 8, 40

    def work() -> None:
        for _ in range(per_thread):
            _commit(coord, RecordingParticipant("a"), RecordingParticipant("b"))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    stats = coord.stats()
    assert stats.begun == stats.committed == threads * per_thread
    assert stats.live == 0


def test_map_growth_is_logged_and_the_maximum_is_a_gauge(
    make_coord: MakeCoord, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    small = 256 * 1024
    coord = make_coord(recovery_interval=None, map_size=small, max_map_size=4 * small)
    assert coord.stats().log_max_map_size == 4 * small
    with caplog.at_level(logging.INFO, logger="dtc_wal.log"):
        while coord.stats().log_map_size < 4 * small:
            txid = coord.begin_transaction()
            coord.enlist_participant(txid, RecordingParticipant("p", journal))
            coord.commit_transaction(txid, data={"blob": "x" * 20_000})
    grew = [r for r in caplog.records if "grew" in r.getMessage()]
    assert [r.levelno for r in grew] == [logging.INFO, logging.WARNING]
    assert "grew from 0.25 to 0.5 MiB" in grew[0].getMessage()
    assert "grew from 0.5 to 1 MiB" in grew[1].getMessage()
    stats = coord.stats()
    assert stats.log_map_size == stats.log_max_map_size
    assert stats.log_bytes_used <= stats.log_map_size


def test_reaching_the_maximum_map_size_warns_what_happens_next(
    make_coord: MakeCoord, journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    small = 256 * 1024
    coord = make_coord(recovery_interval=None, map_size=small, max_map_size=4 * small)
    with caplog.at_level(logging.INFO, logger="dtc_wal.log"):
        while coord.stats().log_map_size < 4 * small:
            txid = coord.begin_transaction()
            coord.enlist_participant(txid, RecordingParticipant("p", journal))
            coord.commit_transaction(txid, data={"blob": "x" * 20_000})
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "maximum map size, 1 MiB" in warning.getMessage()
    assert "LogFullError" in warning.getMessage()


def _hold_lazy_records(coord: TransactionCoordinator) -> None:
    """Keep lazy records (acknowledgements, completions) queued for a second, as a busy
    process may: the gauges must not depend on when they reach the disk."""
    coord.log.lazy_delay = 1.0


def test_a_commit_every_participant_acknowledged_is_finished_at_once(
    make_coord: MakeCoord, journal: Journal
) -> None:
    coord = make_coord(recovery_interval=None, clock=ManualClock())
    _hold_lazy_records(coord)
    _commit(coord, RecordingParticipant("a", journal), RecordingParticipant("b", journal))
    stats = coord.stats()
    assert (stats.live, stats.unfinished, stats.in_doubt) == (0, 0, 0)
    coord.flush()
    assert coord.stats().unfinished == 0


def test_an_abort_whose_rollbacks_are_acknowledged_is_finished_at_once(
    make_coord: MakeCoord, journal: Journal
) -> None:
    coord = make_coord(recovery_interval=None, clock=ManualClock())
    _hold_lazy_records(coord)
    with pytest.raises(TransactionAborted):
        _commit(coord, RecordingParticipant("a", journal), RecordingParticipant("no", vote_no=True))
    saga = coord.begin_transaction()
    coord.register_participant(saga, "s1", *saga_functions("s1", journal))
    coord.register_participant(saga, "s2", *saga_functions("s2", journal, fail=True))
    with pytest.raises(TransactionAborted):
        coord.commit_transaction(saga)
    stats = coord.stats()
    assert (stats.aborted, stats.live, stats.unfinished, stats.in_doubt) == (2, 0, 0, 0)


def test_a_rollback_not_acknowledged_stays_unfinished(
    make_coord: MakeCoord, journal: Journal
) -> None:
    coord = make_coord(recovery_interval=None, clock=ManualClock(), max_retries=0)
    _hold_lazy_records(coord)
    stuck = RecordingParticipant("stuck", journal, rollback_failures=Failures(FOREVER))
    with pytest.raises(TransactionAborted) as info:
        _commit(coord, stuck, RecordingParticipant("no", vote_no=True))
    assert info.value.pending == ("stuck",)
    stats = coord.stats()
    assert (stats.live, stats.unfinished, stats.in_doubt) == (0, 1, 0)
    coord.recover_now()  # still failing: now in doubt, and still unfinished
    stats = coord.stats()
    assert (stats.unfinished, stats.in_doubt) == (1, 1)
