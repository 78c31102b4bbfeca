"""``dtc backup`` and ``dtc repair`` through CliRunner, on real LMDB logs damaged through LMDB
directly (docs/recovery.md, "Repairing a damaged log")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_registry import append_records, journal_lines, populate, raw_tables, registry
from click.testing import CliRunner, Result
from dtc_wal.records import LogRecord, lsn_key
from dtc_wal.wal import WriteAheadLog
from dtc_wal.wal.store import DirectoryLock, LogStore

from dtc_wal import Mode, RecordType, TransactionCoordinator
from dtc_wal.cli import cli

pytestmark = (
    pytest.mark.format1
)  # damage made in format-1 records; format 2: tests/log, test_cli2_commands.py


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def lsns_of(log: Path, txid: str) -> list[int]:
    store = LogStore(log, readonly=True)
    try:
        summary = store.summary(txid)
        assert summary is not None
        return list(summary["l"])
    finally:
        store.close()


def flip_record(log: Path, lsn: int) -> None:
    """Flip the last payload byte of the record at ``lsn``: its CRC no longer matches."""
    with raw_tables(log) as (txn, dbs):
        value = bytearray(txn.get(lsn_key(lsn), db=dbs["records"]))
        value[-1] ^= 0xFF
        txn.put(lsn_key(lsn), bytes(value), db=dbs["records"])


def flip_summary(log: Path, txid: str) -> None:
    with raw_tables(log) as (txn, dbs):
        value = bytearray(txn.get(txid.encode(), db=dbs["txns"]))
        value[-1] ^= 0xFF
        txn.put(txid.encode(), bytes(value), db=dbs["txns"])


def open_coordinator(log: Path) -> TransactionCoordinator:
    return TransactionCoordinator(
        log, registry=registry, recovery_interval=None, max_retries=1, backoff_initial=0.001
    )


def backups_of(log: Path) -> list[Path]:
    return sorted(log.parent.glob(f"{log.name}.damaged-*"))


@pytest.fixture
def damaged_in_doubt(log: Path, journal: Path) -> tuple[str, int]:
    """A log whose decided-commit transaction (the warehouse's commit failed, so it stayed
    unfinished) has a damaged record: the warehouse's enlisted record."""
    txid = populate(log, journal)["in_doubt"]
    lsn = lsns_of(log, txid)[2]  # begun, enlisted payment, enlisted warehouse, ...
    flip_record(log, lsn)
    return txid, lsn


@pytest.fixture
def locked(log: Path, journal: Path) -> Iterator[Path]:
    """A log whose directory lock is held, as by a live coordinator in another process."""
    append_records(log, "tx-held", journal, decide=True)
    flip_record(log, 2)
    lock = DirectoryLock(log)
    lock.acquire()
    yield log
    lock.release()


# -- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["backup", "repair"])
def test_help_has_examples(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert f"dtc {command} /var/lib/shop/dtc-log" in result.stdout
    assert "exit code 3" in " ".join(result.stdout.split())
    assert f"  {command} " in run("--help").stdout


# -- backup ----------------------------------------------------------------------------------


def test_backup_makes_a_copy_that_verify_reads(log: Path, journal: Path) -> None:
    populate(log, journal)
    result = run("backup", log)
    assert result.exit_code == 0, result.output
    [copy] = backups_of(log)
    assert f"to {copy}/data.mdb" in result.stdout
    assert (copy / "data.mdb").read_bytes() == (log / "data.mdb").read_bytes()
    verified = run("verify", copy)
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith("ok: checked")
    assert run("verify", log).stdout == verified.stdout.replace(str(copy), str(log))


def test_backups_in_the_same_second_do_not_collide(log: Path, journal: Path) -> None:
    populate(log, journal)
    outputs = [run("backup", log, "--json") for _ in range(3)]
    assert [r.exit_code for r in outputs] == [0, 0, 0], [r.output for r in outputs]
    copies = [Path(json.loads(r.stdout)["backup"]) for r in outputs]
    assert len(set(copies)) == 3
    assert sorted(copies) == backups_of(log)
    assert all(run("verify", copy).exit_code == 0 for copy in copies)


def test_backup_of_the_current_directory(
    log: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(log, journal)
    monkeypatch.chdir(log)
    result = run("backup", ".", "--json")
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.stdout)["backup"]).parent == log.parent
    assert len(backups_of(log)) == 1


def test_backup_to_a_directory_keeps_the_damage_and_prints_json(
    log: Path, damaged_in_doubt: tuple[str, int], tmp_path: Path
) -> None:
    txid, lsn = damaged_in_doubt
    target = tmp_path / "evidence" / "incident-1"
    result = run("backup", log, "--to", target, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == {"log": str(log), "backup": str(target), "bytes": out["bytes"], "locked": True}
    assert out["bytes"] == (target / "data.mdb").stat().st_size > 0
    verified = run("verify", target)
    assert verified.exit_code == 4
    assert f"LSN {lsn}, transaction {txid}" in verified.stdout
    assert run("show", target, txid).exit_code == 4  # readable, damage and all


def test_backup_never_overwrites(log: Path, journal: Path, tmp_path: Path) -> None:
    populate(log, journal)
    target = tmp_path / "taken"
    target.mkdir()
    (target / "note").write_text("keep me")
    result = run("backup", log, "--to", target)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --to {target} already exists: give a directory that does not exist yet "
        "(a backup never overwrites anything)\n"
    )
    assert sorted(p.name for p in target.iterdir()) == ["note"]


def test_backup_needs_a_log(tmp_path: Path) -> None:
    result = run("backup", tmp_path / "nothing")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no log at")
    assert not (tmp_path / "nothing").exists()


# -- repair ----------------------------------------------------------------------------------


def test_repair_drops_a_damaged_unfinished_transaction(
    log: Path, journal: Path, damaged_in_doubt: tuple[str, int]
) -> None:
    txid, lsn = damaged_in_doubt
    with open_coordinator(log) as coord:  # the damage does not stop start-up...
        [doubt] = coord.in_doubt()  # ...its transaction alone is in doubt, untouched
        assert (doubt.txid, doubt.damaged, doubt.lsn) == (txid, True, lsn)
    lsns = lsns_of(log, txid)

    result = run("repair", log, txid)
    assert result.exit_code == 0, result.output
    out = result.stdout
    [copy] = backups_of(log)
    assert out.startswith(f"backup       {copy} (the log as it was before the repair)\n")
    assert f"transaction  {txid}\n" in out
    assert "state        decided-commit per the index; mode 2pc" in out
    assert f"damaged      LSN {lsn}: record at LSN {lsn} fails its checksum" in out
    assert f"removed      LSN {lsns[0]}-{lsns[-1]} and the transaction's index entries\n" in out
    # the evidence: participants with factory, params and last state; the readable records
    assert "participants (last state per the index)" in out
    assert (
        f'  payment    committed   file     {{"journal": "{journal}", "name": "payment"}}'
    ) in out
    assert "  warehouse  prepared    ?        ?" in out  # its enlisted record is the damaged one
    assert "readable records (removed from the log; the backup keeps them)" in out
    assert "decided-commit  -" in out
    assert 'failed          warehouse    error="ConnectionError: warehouse is unreachable"' in out
    # ...and what to do next: a commit decision is in the evidence, so commit by hand
    assert (
        "  1. settle the participants by hand -- the log no longer knows this transaction, so "
        "recovery will not: commit it in every participant that has not committed yet "
        "(warehouse); the evidence shows a commit: the index says decided-commit; "
        f"LSN {lsns[5]} decided-commit; LSN {lsns[6]} acknowledged commit by payment; "
        "payment committed\n"
    ) in out
    assert f"  2. start the coordinator: it recovers the rest of the log (`dtc verify {log}`" in out
    assert f"  3. keep the backup {copy} until the incident is closed" in out

    with open_coordinator(log) as coord:  # it starts again
        assert coord.last_recovery_report is not None
        assert coord.last_recovery_report.examined == 0
    verified = run("verify", log)
    assert verified.exit_code == 0, verified.output
    assert "(0 unfinished)" in verified.stdout
    assert run("show", log, txid).exit_code == 1  # gone from the log...
    assert run("verify", copy).exit_code == 4  # ...kept in the backup, damage and all
    assert journal_lines(journal, "warehouse") == [f"prepare {txid}"]  # nobody was told


def test_repair_without_a_commit_decision_says_roll_back(
    log: Path, journal: Path, tmp_path: Path
) -> None:
    txid = append_records(log, "tx-undecided", journal, decide=False)
    other = append_records(log, "tx-other", journal, decide=True)
    flip_record(log, 5)  # the stock's prepared record
    result = run("repair", log, txid, "--backup-to", tmp_path / "evidence")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"backup       {tmp_path / 'evidence'} (the log as it was")
    assert "state        active per the index" in result.stdout
    assert (
        "roll it back in every participant that has not rolled back yet (payment, stock); "
        "no readable commit decision and no participant committed: presumed abort"
    ) in result.stdout
    assert backups_of(log) == []  # only the --backup-to copy
    with open_coordinator(log) as coord:  # recovers the rest: the other one commits
        assert coord.last_recovery_report is not None
        assert coord.last_recovery_report.finished == [other]
    assert journal_lines(journal, "payment") == [f"commit {other}"]
    assert run("verify", log).exit_code == 0


@pytest.mark.format1
def test_repair_of_a_finished_transaction_leaves_nothing_to_settle(
    log: Path, journal: Path
) -> None:
    txid = populate(log, journal)["committed"]
    lsn = lsns_of(log, txid)[3]
    flip_record(log, lsn)
    result = run("repair", log, txid)
    assert result.exit_code == 0, result.output
    assert (
        "  1. nothing should be left to settle: the transaction had finished (the index says "
        "committed), so every participant was told commit; check them if in doubt\n"
    ) in result.stdout
    assert run("verify", log).exit_code == 0


def test_repair_of_an_undecided_saga_says_compensate_last_step_first(log: Path) -> None:
    now = time.time()
    steps = [
        LogRecord(
            RecordType.ENLISTED,
            "tx-saga",
            now,
            participant=name,
            factory="step",
            params={"n": order},
            order=order,
            mode=Mode.SAGA,
        )
        for order, name in enumerate(("reserve", "charge", "ship"))
    ]
    with WriteAheadLog(log) as wal:
        wal.append([LogRecord(RecordType.BEGUN, "tx-saga", now), *steps])
        wal.append([LogRecord(RecordType.PREPARED, "tx-saga", now, participant="reserve")])
    flip_record(log, 3)  # the charge step's enlisted record
    result = run("repair", log, "tx-saga")
    assert result.exit_code == 0, result.output
    assert "  charge   enlisted    ?        ?" in result.stdout
    assert (
        "compensate every step that may have run, last step first (ship, charge, reserve); "
        "no readable commit decision and no participant committed: presumed abort"
    ) in result.stdout


def test_repair_refuses_a_healthy_transaction_without_force(log: Path, journal: Path) -> None:
    txid = append_records(log, "tx-healthy", journal, decide=True)
    before = (log / "data.mdb").read_bytes()
    result = run("repair", log, txid)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: transaction {txid} is not damaged: its records read and replay, so recovery "
        f"can finish it (start the coordinator, or `dtc recover {log} --registry "
        "MODULE:ATTRIBUTE`); pass --force to drop it anyway\n"
    )
    assert result.stdout == ""
    assert backups_of(log) == []
    assert (log / "data.mdb").read_bytes() == before

    forced = run("repair", log, txid, "--force")
    assert forced.exit_code == 0, forced.output
    assert "commit it in every participant that has not committed yet (payment, stock)" in (
        forced.stdout
    )
    assert len(backups_of(log)) == 1
    assert run("show", log, txid).exit_code == 1
    assert run("verify", log).exit_code == 0


def test_repair_json_parses(log: Path, damaged_in_doubt: tuple[str, int]) -> None:
    txid, lsn = damaged_in_doubt
    lsns = lsns_of(log, txid)
    result = run("repair", log, txid, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["txid"] == txid and out["path"] == str(log)
    assert out["backup"] == str(backups_of(log)[0])
    assert out["summary"]["s"] == "decided-commit"
    assert out["damaged"] == [{"lsn": lsn, "reason": out["damaged"][0]["reason"]}]
    assert "checksum" in out["damaged"][0]["reason"]
    assert out["removed_lsns"] == lsns
    assert [r["lsn"] for r in out["records"]] == [n for n in lsns if n != lsn]
    assert [(p["name"], p["state"], p["factory"]) for p in out["participants"]] == [
        ("payment", "committed", "file"),
        ("warehouse", "prepared", None),
    ]
    assert out["settle"]["outcome"] == "commit"
    assert out["settle"]["to_check"] == ["warehouse"]
    assert out["settle"]["finished"] is None
    assert out["next"][0].startswith("settle the participants by hand")
    assert len(out["next"]) == 3


def test_repair_with_a_damaged_index_entry_takes_the_lsns_verify_names(
    log: Path, journal: Path
) -> None:
    txid = append_records(log, "tx-both", journal, decide=True)
    flip_record(log, 4)  # the payment's prepared record...
    flip_summary(log, txid)  # ...and the index entry that listed it
    problems = run("verify", log, "--json")
    assert problems.exit_code == 4
    assert 4 in {p["lsn"] for p in json.loads(problems.stdout)["problems"]}

    result = run("repair", log, txid, "--lsn", 4)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "state        unknown (index entry damaged)" in out
    assert "damaged      index entry: index entry unreadable:" in out
    assert "damaged      LSN 4: record at LSN 4 fails its checksum" in out
    assert "removed      LSN 1-6 and the transaction's index entries\n" in out
    assert "participants (last state per the readable records; the index entry is damaged)" in out
    assert "  payment  enlisted    file" in out and "  stock    prepared    file" in out
    assert "the evidence shows a commit: LSN 6 decided-commit" in out
    assert "the index entry was damaged: the damaged records may name more participants" in out
    assert run("verify", log).exit_code == 0
    open_coordinator(log).close()


def test_repair_refuses_an_lsn_of_another_transaction(log: Path, journal: Path) -> None:
    txid = append_records(log, "tx-damaged", journal, decide=True)  # LSN 1-6
    other = append_records(log, "tx-other", journal, decide=True)  # LSN 7-12
    flip_record(log, 2)
    flip_record(log, 10)  # a damaged record that tx-other's index entry still lists
    before = (log / "data.mdb").read_bytes()
    hint = f"give only the damaged LSNs `dtc verify {log}` names for {txid}"
    expected = {
        9: f"--lsn 9 is a readable record of transaction {other}, not of {txid}: {hint}",
        10: f"--lsn 10 belongs to transaction {other} (its index entry lists it), not to "
        f"{txid}: {hint}",
    }
    for lsn, message in expected.items():
        result = run("repair", log, txid, "--lsn", lsn)
        assert result.exit_code == 1
        assert result.stderr == f"Error: {message}\n"
    assert (log / "data.mdb").read_bytes() == before
    assert backups_of(log) == []
    missing = run("repair", log, txid, "--lsn", 99)  # not in the log at all: harmless
    assert missing.exit_code == 0, missing.output
    assert "removed      LSN 1-6, 99 and the transaction's index entries\n" in missing.stdout
    assert "damaged      LSN 99: listed for this transaction but missing from the log" in (
        missing.stdout
    )


def test_repair_an_unknown_transaction(log: Path, journal: Path) -> None:
    populate(log, journal)
    result = run("repair", log, "tx-nope")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: unknown transaction 'tx-nope' in {log}")
    assert backups_of(log) == []


def test_repair_never_overwrites_a_backup_directory(
    log: Path, damaged_in_doubt: tuple[str, int], tmp_path: Path
) -> None:
    txid, _ = damaged_in_doubt
    before = (log / "data.mdb").read_bytes()
    result = run("repair", log, txid, "--backup-to", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: --backup-to {tmp_path} already exists")
    assert (log / "data.mdb").read_bytes() == before


@pytest.mark.parametrize("command", [["backup"], ["repair", "tx-held"]])
def test_refused_while_a_live_coordinator_holds_the_log(locked: Path, command: list[str]) -> None:
    before = (locked / "data.mdb").read_bytes()
    result = run(command[0], locked, *command[1:])
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: log {locked} is held by ")
    assert len(result.stderr.splitlines()) == 1
    assert backups_of(locked) == []
    assert (locked / "data.mdb").read_bytes() == before
