"""``dtc recover``, ``dtc resolve`` and ``dtc compact`` (and ``compact_log``) through CliRunner."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli2_bank import damage, writer
from cli_registry import append_unfinished, journal_lines, populate, raw_tables
from click.testing import CliRunner, Result

from dtc_wal import ManualClock, TransactionCoordinator
from dtc_wal.cli import cli
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb import compact as lmdb_compact
from dtc_wal.log.lmdb.codec import TN
from dtc_wal.log.lmdb.store import LmdbStore
from dtc_wal.maintenance.verify import verify_log
from dtc_wal.protocol import fold
from dtc_wal.protocol.records import MemberSpec, Mode, Opened

REGISTRY = "cli_registry:registry"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def locked(log: Path, journal: Path) -> Iterator[Path]:
    """A log held open for writing by another process (tests/cli2_bank.py write), as by a
    live coordinator; it holds one decided-commit transaction, tx-held."""
    append_unfinished(log, "tx-held", journal, decide=True)
    with writer(log):
        yield log


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def view_of(log: Path, txid: str) -> str:
    """The state the transaction's records fold to (``decided-commit``, ...)."""
    with LmdbLog(log, readonly=True) as opened:
        stored = opened.read(txid)
    assert stored is not None and stored.damage is None
    return fold(stored.records).state.value


# -- recover ---------------------------------------------------------------------------------


def test_recover_resends_commit_to_every_participant(log: Path, journal: Path) -> None:
    txid = append_unfinished(log, "tx-crashed", journal, decide=True)
    result = run("recover", log, "--registry", REGISTRY)
    assert result.exit_code == 0, result.output
    assert f"{txid}  decided-commit: re-send commit -> finished" in result.stdout
    assert "examined 1 unfinished transaction(s), finished 1, 0 participant(s) in doubt" in (
        result.stdout
    )
    assert journal_lines(journal, "payment") == [f"commit {txid}"]
    assert journal_lines(journal, "stock") == [f"commit {txid}"]
    assert view_of(log, txid) == "committed"
    assert verify_log(log).ok


@pytest.mark.parametrize("workers", ["1", "3"])
def test_recover_with_workers_finishes_every_transaction(
    log: Path, journal: Path, workers: str
) -> None:
    txids = [append_unfinished(log, f"tx-{i}", journal, decide=True) for i in range(4)]
    result = run("recover", log, "--registry", REGISTRY, "--workers", workers)
    assert result.exit_code == 0, result.output
    # reported in log order
    lines = [ln for ln in result.stdout.splitlines() if "re-send commit -> finished" in ln]
    assert [ln.split()[0] for ln in lines] == txids
    assert sorted(journal_lines(journal, "payment")) == sorted(f"commit {t}" for t in txids)


def test_recover_refuses_zero_workers(log: Path, journal: Path) -> None:
    append_unfinished(log, "tx-crashed", journal, decide=True)
    result = run("recover", log, "--registry", REGISTRY, "--workers", "0")
    assert result.exit_code == 2
    assert "--workers" in result.output


def test_recover_presumes_abort_without_a_decision(log: Path, journal: Path) -> None:
    txid = append_unfinished(log, "tx-undecided", journal, decide=False)
    result = run("recover", log, "--registry", REGISTRY, "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["finished"] == [txid]
    assert report["transactions"][0]["outcome"] == "rollback"
    assert journal_lines(journal, "payment") == [f"rollback {txid}"]


def test_recover_dry_run_calls_nobody_and_writes_nothing(log: Path, journal: Path) -> None:
    txid = append_unfinished(log, "tx-crashed", journal, decide=True)
    result = run("recover", log, "--registry", REGISTRY, "--dry-run")
    assert result.exit_code == 0
    assert f"{txid}  decided-commit: re-send commit: payment, stock -> would finish" in (
        result.stdout
    )
    assert "would finish 1" in result.stdout
    assert not journal.exists()
    assert view_of(log, txid) == "decided-commit"


def test_recover_dry_run_works_beside_a_live_coordinator(locked: Path) -> None:
    result = run("recover", locked, "--registry", REGISTRY, "--dry-run")
    assert result.exit_code == 0
    assert "would finish 1" in result.stdout


def test_recover_dry_run_names_factories_missing_from_the_registry(
    log: Path, journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_unfinished(log, "tx-crashed", journal, decide=True)
    (tmp_path / "empty_registry.py").write_text(
        "from dtc_wal import ParticipantRegistry\nregistry = ParticipantRegistry()\n"
    )
    monkeypatch.chdir(tmp_path)  # the current directory is importable
    result = run("recover", log, "--registry", "empty_registry:registry", "--dry-run")
    assert result.exit_code == 4  # as the real run below: a pre-flight check
    assert "in doubt: tx-crashed payment: needs commit" in result.stdout
    assert "factory 'file' is not in the registry" in result.stdout
    assert result.stderr.startswith("Error: 2 participant(s) would stay in doubt")
    assert not journal.exists()
    assert view_of(log, "tx-crashed") == "decided-commit"  # nothing was written

    real = run("recover", log, "--registry", "empty_registry:registry")
    assert real.exit_code == 4
    assert real.stderr.startswith("Error: 2 participant(s) still in doubt")


def test_recover_dry_run_exits_4_for_a_damaged_transaction(log: Path, journal: Path) -> None:
    append_unfinished(log, "tx-crashed", journal, decide=True)  # the factory is registered
    damage(log, "tx-crashed", 1)  # flip the last byte of its Decided: a bad checksum
    dry = run("recover", log, "--registry", REGISTRY, "--dry-run")
    assert dry.exit_code == 4
    assert dry.stderr.startswith("Error: 1 damaged transaction(s) would be left alone;")
    real = run("recover", log, "--registry", REGISTRY)
    assert real.exit_code == 4
    assert real.stderr.startswith("Error: 1 damaged transaction(s) left alone;")


def test_recover_dry_run_json_exits_4_too(
    log: Path, journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_unfinished(log, "tx-crashed", journal, decide=True)
    (tmp_path / "empty_registry.py").write_text(
        "from dtc_wal import ParticipantRegistry\nregistry = ParticipantRegistry()\n"
    )
    monkeypatch.chdir(tmp_path)
    result = run("recover", log, "--registry", "empty_registry:registry", "--dry-run", "--json")
    assert result.exit_code == 4
    report = json.loads(result.stdout)
    assert report["dry_run"] and [d["participant"] for d in report["in_doubt"]] == [
        "payment",
        "stock",
    ]


def test_recover_leaves_unreachable_participants_in_doubt_with_exit_4(
    log: Path, journal: Path
) -> None:
    txid = append_unfinished(log, "tx-crashed", journal, decide=True, fail="commit")
    result = run("recover", log, "--registry", REGISTRY)
    assert result.exit_code == 4
    assert f"{txid}  decided-commit: re-send commit -> in doubt: payment" in result.stdout
    assert "ConnectionError: payment is unreachable" in result.stdout
    assert result.stderr.startswith("Error: 1 participant(s) still in doubt")
    assert journal_lines(journal, "stock") == [f"commit {txid}"]


def test_recover_accepts_a_function_returning_the_registry(log: Path, journal: Path) -> None:
    append_unfinished(log, "tx-crashed", journal, decide=True)
    result = run("recover", log, "--registry", "cli_registry:make_registry")
    assert result.exit_code == 0
    assert "finished 1" in result.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cli_registry", "'cli_registry' is not MODULE:ATTRIBUTE"),
        (":registry", "':registry' is not MODULE:ATTRIBUTE"),
        ("no_such_module_xyz:registry", "cannot import 'no_such_module_xyz' (ModuleNotFoundError"),
        ("cli_registry:nothing", "module 'cli_registry' has no attribute 'nothing'"),
        ("cli_registry:not_a_registry", "is a int, not a dtc_wal.ParticipantRegistry"),
    ],
)
def test_recover_bad_registry_spec_is_a_usage_error(
    log: Path, journal: Path, spec: str, message: str
) -> None:
    append_unfinished(log, "tx-crashed", journal, decide=True)
    result = run("recover", log, "--registry", spec)
    assert result.exit_code == 2
    assert "Invalid value for '--registry'" in result.stderr
    assert message in result.stderr
    assert not journal.exists()


def test_recover_registry_module_that_fails_to_import(
    log: Path, journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_unfinished(log, "tx-crashed", journal, decide=True)
    (tmp_path / "broken_registry.py").write_text("raise RuntimeError('no database URL')\n")
    monkeypatch.chdir(tmp_path)
    result = run("recover", log, "--registry", "broken_registry:registry")
    assert result.exit_code == 2
    assert "importing 'broken_registry' failed: RuntimeError: no database URL" in result.stderr


def test_recover_refuses_a_log_a_live_coordinator_holds(locked: Path) -> None:
    result = run("recover", locked, "--registry", REGISTRY)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: log {locked} is held by ")
    assert len(result.stderr.splitlines()) == 1


def test_recover_missing_log_creates_nothing(tmp_path: Path) -> None:
    result = run("recover", tmp_path / "nope", "--registry", REGISTRY)
    assert result.exit_code == 1
    assert "Error: no log at" in result.stderr
    assert not (tmp_path / "nope").exists()


# -- resolve ---------------------------------------------------------------------------------


def test_resolve_decides_an_undecided_transaction(log: Path, journal: Path) -> None:
    txid = append_unfinished(log, "tx-undecided", journal, decide=False)
    result = run(
        "resolve", log, txid, "--abort", "--reason", "payment provider says no", "--actor", "ops"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"{txid}: decided rollback; the transaction is now decided-abort; still pending: "
        f"payment, stock -- `dtc recover {log} --registry MODULE:ATTRIBUTE` delivers the decision"
    )
    shown = json.loads(run("show", log, txid, "--json").stdout)
    assert shown["state"] == "decided-abort"
    assert (shown["reason"], shown["decided_by"]) == ("payment provider says no", "ops")
    assert not journal.exists()  # recorded only: recover delivers it
    assert run("recover", log, "--registry", REGISTRY).exit_code == 0
    assert journal_lines(journal, "payment") == [f"rollback {txid}"]


def test_resolve_commit_needs_every_participant_prepared(log: Path, journal: Path) -> None:
    # Format 2 logs the votes with the decision, so an undecided transaction has no vote in
    # the log: commit is refused naming every participant (format 1 named only those
    # without a PREPARED record).
    append_unfinished(log, "tx-1", journal, decide=False)
    result = run("resolve", log, "tx-1", "--commit", "--reason", "looks fine")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: cannot decide commit for tx-1: payment, stock never voted yes in the log; "
        "only abort is safe"
    )
    assert view_of(log, "tx-1") == "active"
    assert run("resolve", log, "tx-1", "--abort", "--reason", "safe").exit_code == 0
    assert view_of(log, "tx-1") == "decided-abort"


def test_resolve_settles_one_participant_then_the_transaction_completes(
    log: Path, journal: Path
) -> None:
    ids = populate(log, journal)
    txid = ids["in_doubt"]
    result = run(
        "resolve", log, txid, "--commit", "--participant", "warehouse", "--reason", "done by hand"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"{txid}: warehouse resolved commit; the transaction is now committed"
    )
    out = run("show", log, txid).stdout
    assert "resolved commit by" in out
    assert "reason=" in out and "done by hand" in out


def test_resolve_contradicting_the_decision_needs_heuristic(log: Path, journal: Path) -> None:
    txid = populate(log, journal)["in_doubt"]
    args = ["resolve", log, txid, "--abort", "--participant", "warehouse", "--reason", "undone"]
    refused = run(*args)
    assert refused.exit_code == 1
    assert "would contradict it" in refused.stderr and "--heuristic" in refused.stderr
    accepted = run(*args, "--heuristic", "--json")
    assert accepted.exit_code == 0
    assert json.loads(accepted.stdout) == {
        "txid": txid,
        "state": "committed",
        "outcome": "commit",
        "pending": [],
    }


def test_resolve_unknown_participant(log: Path, journal: Path) -> None:
    txid = populate(log, journal)["in_doubt"]
    result = run("resolve", log, txid, "--commit", "--participant", "nobody", "--reason", "x")
    assert result.exit_code == 1
    assert "'nobody' is not pending" in result.stderr and "pending: warehouse" in result.stderr


def test_resolve_a_finished_transaction(log: Path, journal: Path) -> None:
    txid = populate(log, journal)["committed"]
    result = run("resolve", log, txid, "--commit", "--reason", "again")
    assert result.exit_code == 1
    assert f"transaction {txid} is already committed" in result.stderr


def test_resolve_unknown_txid(log: Path, journal: Path) -> None:
    populate(log, journal)
    result = run("resolve", log, "tx-unknown", "--abort", "--reason", "x")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: unknown transaction 'tx-unknown' in {log}")


def test_resolve_needs_an_outcome_and_a_reason(log: Path, journal: Path) -> None:
    append_unfinished(log, "tx-1", journal, decide=False)
    no_outcome = run("resolve", log, "tx-1", "--reason", "x")
    assert no_outcome.exit_code == 2 and "--commit or --abort" in no_outcome.stderr
    no_reason = run("resolve", log, "tx-1", "--abort")
    assert no_reason.exit_code == 2 and "Missing option '--reason'" in no_reason.stderr
    blank = run("resolve", log, "tx-1", "--abort", "--reason", "  ")
    assert blank.exit_code == 2 and "say why" in blank.stderr
    assert view_of(log, "tx-1") == "active"


def test_resolve_refuses_a_log_a_live_coordinator_holds(locked: Path) -> None:
    result = run("resolve", locked, "tx-held", "--commit", "--reason", "x")
    assert result.exit_code == 3
    assert f"log {locked} is held by " in result.stderr


def test_resolve_missing_log(tmp_path: Path) -> None:
    result = run("resolve", tmp_path / "nope", "tx", "--commit", "--reason", "x")
    assert result.exit_code == 1
    assert not (tmp_path / "nope").exists()


# -- compact (format 2: LmdbLog.compact through `dtc compact`; the file is never copied) ----


def old_and_new(log: Path, journal: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Transactions from November 2023 (a manual clock) and from now."""
    return populate(log, journal, clock=ManualClock()), populate(log, journal)


def indexed(log: Path) -> set[str]:
    with LmdbLog(log, readonly=True) as opened:
        return {t.txid for t in opened.transactions()}


def unfinished(log: Path) -> set[str]:
    with LmdbLog(log, readonly=True) as opened:
        return {t.txid for t in opened.unfinished()}


def compact(log: Path, *args: str) -> dict[str, object]:
    result = run("compact", log, *args, "--json")
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_compact_removes_old_finished_transactions_only(log: Path, journal: Path) -> None:
    old, new = old_and_new(log, journal)
    report = compact(log, "--keep", "30d")
    assert report["transactions_removed"] == 3  # old committed, aborted and saga
    assert report["records_removed"] == 3 + 3 + 4  # Opened, Decided, Ended (+ a StepDone)
    assert (report["finished_kept"], report["unfinished_kept"]) == (3, 2)
    # the old in-doubt transaction stays, whatever its age
    assert indexed(log) == set(new.values()) | {old["in_doubt"]}
    assert verify_log(log).ok


def test_compact_never_removes_an_unfinished_transaction(log: Path, journal: Path) -> None:
    ids = populate(log, journal, clock=ManualClock())
    append_unfinished(log, "tx-undecided", journal, decide=False)
    compact(log, "--keep", "0s")
    assert indexed(log) == {ids["in_doubt"], "tx-undecided"}
    assert unfinished(log) == {ids["in_doubt"], "tx-undecided"}


def last_tn(log: Path) -> int:
    """The highest transaction number the txns table holds."""
    with raw_tables(log) as (txn, dbs):
        return max(TN.unpack(bytes(tn))[0] for _, tn in txn.cursor(db=dbs["txns"]))


def test_compact_keeps_the_transaction_number_high_water_mark(log: Path, journal: Path) -> None:
    # Format 2's counterpart of format 1's LSN high-water mark: a transaction opened after
    # compaction never takes the number of one removed (the newest, the saga, included).
    populate(log, journal)
    last = last_tn(log)
    compact(log, "--keep", "0s")
    with LmdbLog(log) as opened:
        opened.append([Opened("tx-after", 0.0, Mode.TWO_PHASE, (MemberSpec("a"),))])
    with raw_tables(log) as (txn, dbs):
        assert TN.unpack(txn.get(b"tx-after", db=dbs["txns"]))[0] == last + 1
    assert verify_log(log).ok


def commit_many(log: Path, n: int, size: int = 2000) -> None:
    with TransactionCoordinator(log, recovery_interval=None) as coord:
        for _ in range(n):
            txid = coord.begin_transaction()
            coord.register_participant(txid, "step", lambda t, d: None, lambda t: None)
            coord.commit_transaction(txid, {"blob": b"x" * size})


@pytest.mark.filterwarnings("ignore::dtc_wal.NotRecoverableWarning")
def test_compact_frees_pages_that_later_writes_reuse(log: Path, journal: Path) -> None:
    # Format 1 shrank the file by a compacting copy; format 2 never copies (LMDB reuses
    # the freed pages): the file keeps its size, and later writes fill the freed space.
    ids = populate(log, journal)
    commit_many(log, 200)
    before = (log / "data.mdb").stat().st_size
    report = compact(log, "--keep", "0s")
    assert report["transactions_removed"] == 203 and report["copied"] is False
    assert report["file_bytes_before"] == before
    after = (log / "data.mdb").stat().st_size
    assert report["file_bytes_after"] == after >= before  # deletes take fresh pages too
    assert report["freed_bytes"] == 0
    assert isinstance(report["free_bytes"], int) and report["free_bytes"] > 200 * 2000 / 2
    assert sorted(os.listdir(log)) == ["coordinator.lock", "data.mdb", "lock.mdb"]  # no copy
    assert indexed(log) == {ids["in_doubt"]}
    commit_many(log, 50)  # a quarter of what was freed
    assert (log / "data.mdb").stat().st_size == after
    assert verify_log(log).ok
    assert len(indexed(log)) == 51


def test_compact_refuses_to_copy_a_format2_log(log: Path, journal: Path) -> None:
    populate(log, journal)
    before = indexed(log)
    result = run("compact", log, "--keep", "0s", "--copy")
    assert result.exit_code == 1
    assert "log format 2, whose compaction does not copy the file" in result.stderr
    assert "run without --copy" in result.stderr
    assert indexed(log) == before  # refused before anything was removed


def test_compact_in_bounded_batches(
    log: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each write transaction examines at most CHUNK transactions, so appends interleave
    # with a long compaction (format 1 counted records per batch and reported progress).
    for _ in range(4):
        populate(log, journal)
    monkeypatch.setattr(lmdb_compact, "CHUNK", 2)
    commits: list[int] = []
    write = LmdbStore.write

    def counted(self: LmdbStore, body: object, *, freeing: bool = False) -> object:
        commits.append(1)
        return write(self, body, freeing=freeing)  # type: ignore[arg-type]

    monkeypatch.setattr(LmdbStore, "write", counted)
    report = compact(log, "--keep", "0s")
    assert report["transactions_removed"] == 12
    assert len(commits) >= 16 // 2  # 16 transactions examined, 2 a write transaction
    monkeypatch.undo()
    assert verify_log(log).ok
    assert len(indexed(log)) == 4


def test_compact_dry_run_changes_nothing(log: Path, journal: Path) -> None:
    populate(log, journal)
    before = indexed(log)
    report = compact(log, "--keep", "0s", "--dry-run")
    assert report["dry_run"] and report["transactions_removed"] == 3 and not report["copied"]
    assert indexed(log) == before


def test_compact_refuses_while_locked(locked: Path) -> None:
    result = run("compact", locked, "--keep", "0s")
    assert result.exit_code == 3
    assert compact(locked, "--keep", "0s", "--dry-run")["unfinished_kept"] == 1


def test_compact_argument_errors(log: Path, journal: Path, tmp_path: Path) -> None:
    populate(log, journal)
    negative = run("compact", log, "--keep", "-1d")
    assert negative.exit_code == 2
    missing = run("compact", tmp_path / "nope", "--keep", "0s")
    assert missing.exit_code == 1 and "Error: no log at" in missing.stderr
    assert not (tmp_path / "nope").exists()


# -- compact: the command --------------------------------------------------------------------


def test_dtc_compact_prints_what_was_freed(log: Path, journal: Path) -> None:
    for _ in range(10):
        populate(log, journal, clock=ManualClock())
    populate(log, journal)
    result = run("compact", log)  # --keep 7d
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("removed 30 finished transaction(s) (100 record(s)); ")
    assert "kept 3 finished and 11 unfinished: finished before" in lines[0]
    assert lines[0].endswith("(older than 7d00h)")
    assert lines[1].startswith("file not copied (log format 2): ")
    assert lines[1].endswith(", reused by later writes")


def test_dtc_compact_json_and_dry_run(log: Path, journal: Path) -> None:
    populate(log, journal, clock=ManualClock())
    dry = json.loads(run("compact", log, "--keep", "1d", "--dry-run", "--json").stdout)
    assert dry["dry_run"] and dry["transactions_removed"] == 3 and dry["copied"] is False
    done = run("compact", log, "--keep", "1d", "--no-copy", "--json")
    assert done.exit_code == 0
    report = json.loads(done.stdout)
    assert report["transactions_removed"] == 3 and report["copied"] is False
    assert report["freed_bytes"] == 0


def test_dtc_compact_refuses_while_locked(locked: Path) -> None:
    result = run("compact", locked)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: log {locked} is held by ")


def test_dtc_compact_bad_keep(log: Path, journal: Path) -> None:
    populate(log, journal)
    result = run("compact", log, "--keep", "forever")
    assert result.exit_code == 2
    assert "'forever' is not a duration" in result.stderr
