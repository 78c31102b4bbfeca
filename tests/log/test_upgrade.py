"""Format-1 logs convert to format 2 only by an explicit upgrade that keeps the original
(issue 12, item 4): the format-1 fixture (tests/fixtures/format1) converts, every
transaction folds to the state format 1's replay and the manifest give, the new log
verifies clean, and the original is never changed. Damage is listed, not guessed at; a
live coordinator's log is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.format1.logs import (
    DAMAGED,
    DECIDED,
    UNDECIDED,
    append_records,
    build,
    change_record,
    flip_last,
)
from fixtures.format1.writer import WriteAheadLog

from dtc_wal.errors import (
    InvalidOptionError,
    LogCorruptError,
    LogError,
    LogLockedError,
    UnsupportedFormatError,
)
from dtc_wal.format1.history import replay
from dtc_wal.format1.records import LogRecord
from dtc_wal.format1.store import LogStore
from dtc_wal.format1.vocabulary import Outcome as F1Outcome
from dtc_wal.format1.vocabulary import RecordType
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.maintenance.upgrade import upgrade_log
from dtc_wal.maintenance.upgrade_convert import expected_state
from dtc_wal.maintenance.verify import log_format, verify_log
from dtc_wal.protocol import fold
from dtc_wal.protocol.records import (
    Acked,
    Decided,
    Ended,
    Failed,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    Outcome,
    Resolved,
    StepDone,
    Vote,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "format1"
MANIFEST: dict[str, dict[str, Any]] = json.loads((FIXTURE / "manifest.json").read_text())
T0 = 1_760_000_000.0


def digest(log: Path) -> str:
    return hashlib.sha256((log / "data.mdb").read_bytes()).hexdigest()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    target = tmp_path / "mixed"
    shutil.copytree(FIXTURE / "mixed", target)
    return target


def read_all(path: Path) -> dict[str, Any]:
    with LmdbLog(path, readonly=True) as new:
        return {t.txid: t.records for t in new.transactions()}


def format1_views(path: Path) -> dict[str, Any]:
    with LogStore(path, readonly=True) as store:
        return {txid: replay(store.records_of(txid)) for txid in MANIFEST}


def test_the_fixture_converts_to_the_states_of_the_manifest_and_of_format_1(
    log: Path, tmp_path: Path
) -> None:
    before = digest(log)
    report = upgrade_log(log, to=tmp_path / "new")
    assert (report.converted, report.transactions, report.unfinished) == (10, 10, 6)
    assert report.not_converted == []
    assert report.evidence == str(log) and report.target == str(tmp_path / "new")
    assert log_format(tmp_path / "new") == 2 and log_format(log) == 1
    views = format1_views(log)
    stored = read_all(tmp_path / "new")
    assert set(stored) == set(MANIFEST)
    for txid, records in stored.items():
        tx = fold(records)
        view = views[txid]
        assert tx.state.value == MANIFEST[txid]["state"] == view.state.value, txid
        assert [m.name for m in tx.members] == [p.name for p in view.ordered()], txid
        for member, part in zip(tx.members, view.ordered(), strict=True):
            assert member.state is expected_state(view, part.state), (txid, member.name)
            assert (member.factory, dict(member.params or {})) == (part.factory, part.params)
        assert tx.opened_at == view.created_at and tx.decided_at == view.decided_at
    assert digest(log) == before
    assert verify_log(tmp_path / "new").ok


def test_every_fact_is_kept_in_its_format_2_record(log: Path, tmp_path: Path) -> None:
    upgrade_log(log, to=tmp_path / "new")
    stored = read_all(tmp_path / "new")
    data = {"sku": "A1", "qty": 2}
    abc = tuple(MemberSpec(n, "ledger", {"account": n}) for n in "abc")
    steps = tuple(MemberSpec(n, "step", {"step": n}) for n in "abc")
    yes = tuple((i, Vote.YES) for i in range(3))
    assert stored["2pc-committed"] == (
        Opened("2pc-committed", T0, Mode.TWO_PHASE, abc, data),
        Decided("2pc-committed", T0 + 2, Outcome.COMMIT, yes),
        *(Acked("2pc-committed", T0 + 1, ((i, MemberState.COMMITTED),)) for i in range(3)),
        Ended("2pc-committed", T0 + 3),
    )
    assert stored["2pc-aborted"][1] == Decided(
        "2pc-aborted", T0 + 2, Outcome.ABORT, ((0, Vote.YES),), "b voted no in prepare (VoteNo: no)"
    )
    assert stored["2pc-read-only"][1].votes == ((0, Vote.YES), (1, Vote.READ_ONLY))
    assert stored["2pc-undecided"] == (Opened("2pc-undecided", T0, Mode.TWO_PHASE, abc),)
    assert stored["2pc-decided-commit"][-1] == Failed(
        "2pc-decided-commit", T0 + 2, 2, Op.COMMIT, "ConnectionError: down", 4
    )
    assert stored["2pc-resolved"][-1] == Resolved(
        "2pc-resolved", T0 + 4, 2, Outcome.COMMIT, "ops@host", "committed by hand"
    )
    # Saga steps: StepDone each, but the last step's completion travels in the decision;
    # the commit decision settles every step, so format 1's commit acks have no record.
    assert stored["saga-committed"] == (
        Opened("saga-committed", T0, Mode.SAGA, steps, data),
        StepDone("saga-committed", T0 + 1, 0),
        StepDone("saga-committed", T0 + 1, 1),
        Decided("saga-committed", T0 + 2, Outcome.COMMIT),
        Ended("saga-committed", T0 + 3),
    )
    assert stored["saga-midway"][1:] == (StepDone("saga-midway", T0 + 1, 0),)
    assert stored["saga-compensating"][-1] == Acked(
        "saga-compensating", T0 + 1, ((2, MemberState.ROLLED_BACK),)
    )


def test_in_place_moves_the_original_aside_unchanged(log: Path) -> None:
    before = digest(log)
    report = upgrade_log(log, in_place=True)
    evidence = Path(str(report.evidence))
    assert evidence.name.startswith("mixed.format1-") and evidence.parent == log.parent
    assert report.target == str(log)
    assert log_format(log) == 2 and log_format(evidence) == 1
    assert digest(evidence) == before
    assert sorted(p.name for p in log.parent.iterdir()) == sorted(["mixed", evidence.name])
    assert verify_log(log).ok
    with pytest.raises(UnsupportedFormatError, match="already format 2"):
        upgrade_log(log, in_place=True)


def test_a_dry_run_writes_nothing(log: Path) -> None:
    """Nothing but LMDB's reader lock file (lock.mdb), which any reader creates."""
    before = digest(log)
    report = upgrade_log(log, dry_run=True)
    assert report.dry_run and report.converted == 10 and report.target is None
    assert sorted(p.name for p in log.iterdir()) == ["data.mdb", "lock.mdb"]
    assert digest(log) == before
    assert sorted(p.name for p in log.parent.iterdir()) == ["mixed"]


LIVE = (  # a coordinator of the version that wrote the log holds its directory lock
    "import sys, time\n"
    "from dtc_wal.log.lmdb.directory import open_log_directory\n"
    "lock = open_log_directory(sys.argv[1])\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def live(log: Path) -> Iterator[Path]:
    """``log`` held by a coordinator in another process (killed at the end)."""
    child = subprocess.Popen(
        [sys.executable, "-c", LIVE, str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        yield log
    finally:
        child.kill()
        child.wait()


def test_a_live_coordinators_log_is_refused(live: Path, tmp_path: Path) -> None:
    for options in ({"to": tmp_path / "new"}, {"in_place": True}, {"dry_run": True}):
        with pytest.raises(LogLockedError, match="live coordinator"):
            upgrade_log(live, **options)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "--to DIR"),
        ({"to": "X", "in_place": True}, "not both"),
    ],
)
def test_bad_options_are_refused(log: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        upgrade_log(log, **options)


def test_a_target_that_is_not_empty_is_refused(log: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidOptionError, match="not an empty directory"):
        upgrade_log(log, to=tmp_path / "full")
    with pytest.raises(InvalidOptionError, match="the log itself"):
        upgrade_log(log, to=log)


def test_damaged_transactions_are_listed_and_refuse_unless_skipped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    build(log, tmp_path / "journal")
    change_record(log, 2, flip_last)  # the damaged transaction's second enlisted record
    before = digest(log)
    with pytest.raises(LogCorruptError, match=f"1 damaged transaction.*{DAMAGED}.*skip-damaged"):
        upgrade_log(log, to=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("new")] == []
    report = upgrade_log(log, to=tmp_path / "new", skip_damaged=True)
    assert [(n.txid, n.damaged) for n in report.not_converted] == [(DAMAGED, True)]
    assert "checksum" in report.not_converted[0].reason
    assert set(read_all(tmp_path / "new")) == {DECIDED, UNDECIDED}
    assert digest(log) == before  # the damaged one is still in the original


def test_a_transaction_format_2_cannot_say_is_refused(tmp_path: Path) -> None:
    """An undecided 2PC transaction with a read-only vote: format 2 keeps votes only in the
    decision, and recovery would roll back a read-only member; the upgrade refuses."""
    log = tmp_path / "log"
    append_records(log, "tx-ok", tmp_path / "journal", decide=True)
    with WriteAheadLog(log) as wal:
        now = time.time()
        wal.append(
            [
                LogRecord(RecordType.BEGUN, "tx-ro", now),
                LogRecord(
                    RecordType.ENLISTED, "tx-ro", now, participant="a", order=0, mode=Mode.TWO_PHASE
                ),
                LogRecord(
                    RecordType.PREPARED,
                    "tx-ro",
                    now,
                    participant="a",
                    outcome=F1Outcome.READ_ONLY,
                ),
            ]
        )
    with pytest.raises(LogError, match="tx-ro is undecided and a voted read-only"):
        upgrade_log(log, to=tmp_path / "new", skip_damaged=True)
    assert not (tmp_path / "new").exists()
    report = upgrade_log(log, dry_run=True)
    assert [(n.txid, n.damaged) for n in report.not_converted] == [("tx-ro", False)]


def test_not_a_format_1_log(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no log at"):
        upgrade_log(tmp_path / "none", dry_run=True)
