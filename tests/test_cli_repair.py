"""``dtc backup`` and ``dtc repair`` through CliRunner, on real format-2 LMDB logs damaged
through LMDB directly (docs/cli.md, "Repairing a damaged transaction")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli2_bank import damage, writer
from cli_registry import append_unfinished, journal_lines, populate, raw_tables, registry
from click.testing import CliRunner, Result

from dtc_wal import TransactionCoordinator
from dtc_wal.cli import cli
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol.records import MemberSpec, Mode, Opened, StepDone


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def open_coordinator(log: Path) -> TransactionCoordinator:
    return TransactionCoordinator(
        log, registry=registry, recovery_interval=None, max_retries=1, backoff_initial=0.001
    )


def backups_of(log: Path) -> list[Path]:
    return sorted(log.parent.glob(f"{log.name}.damaged-*"))


def txids(log: Path) -> set[str]:
    with LmdbLog(log, readonly=True) as opened:
        return {t.txid for t in opened.transactions()}


@pytest.fixture
def damaged_in_doubt(log: Path, journal: Path) -> tuple[str, int]:
    """A log whose decided-commit transaction (the warehouse's commit failed, so it stayed
    unfinished) has a damaged record: record 2, the warehouse's failure."""
    txid = populate(log, journal)["in_doubt"]
    damage(log, txid, 2)
    return txid, 2


@pytest.fixture
def locked(log: Path, journal: Path) -> Iterator[Path]:
    """A log held by a writer in another process, as by a live coordinator; its one
    transaction, tx-held, is damaged."""
    append_unfinished(log, "tx-held", journal, decide=True)
    damage(log, "tx-held", 1)
    with writer(log):
        yield log


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
    assert f"transaction {txid}, record {lsn}: " in verified.stdout
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
    txid, seq = damaged_in_doubt
    others = txids(log) - {txid}
    with open_coordinator(log) as coord:  # the damage does not stop start-up...
        [doubt] = coord.in_doubt()  # ...its transaction alone is in doubt, untouched
        assert (doubt.txid, doubt.damaged, doubt.participant) == (txid, True, "*")
        assert f"record {seq} of transaction {txid} fails its checksum" in doubt.error

    result = run("repair", log, txid)
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    [copy] = backups_of(log)
    assert out[0] == f"kept a copy of {log} in {copy}"
    assert out[1] == f"dropped transaction {txid} (4 stored record(s))"
    assert out[2].startswith(f"damage: record 2 of transaction {txid} fails its checksum")
    # the evidence: the readable records, the participants with factory and last state
    assert [line.split()[:3] for line in out[3:5]] == [
        ["record", "0:", "opened"],
        ["record", "1:", "decided"],
    ]
    assert out[5:7] == [
        "  participant payment (file): prepared",  # folded up to the damage: no acks read
        "  participant warehouse (file): prepared",
    ]
    # ...and what to do next: a commit decision is in the evidence, so commit by hand
    assert out[7] == (
        "next: settle each participant by hand -- the log no longer knows this transaction, "
        "so recovery will not: commit it in every participant that has not committed yet "
        "(payment, warehouse) (the log holds a commit decision)"
    )
    assert out[8] == f"next: keep the copy {copy} until the incident is closed"

    with open_coordinator(log) as coord:  # it starts again
        assert coord.last_recovery_report is not None
        assert coord.last_recovery_report.transactions == []
        assert coord.in_doubt() == []
    verified = run("verify", log)
    assert verified.exit_code == 0, verified.output
    assert "(0 unfinished)" in verified.stdout
    assert txids(log) == others  # only the damaged transaction was dropped
    assert run("show", log, txid).exit_code == 1  # gone from the log...
    assert run("verify", copy).exit_code == 4  # ...kept in the copy, damage and all
    assert run("show", copy, txid).exit_code == 4
    assert journal_lines(journal, "warehouse") == [f"prepare {txid}"]  # nobody was told


def test_repair_without_a_commit_decision_says_roll_back(
    log: Path, journal: Path, tmp_path: Path
) -> None:
    txid = append_unfinished(log, "tx-undecided", journal, decide=False)
    other = append_unfinished(log, "tx-other", journal, decide=True)
    damage(log, txid, 0)  # its Opened: nothing of it folds
    result = run("repair", log, txid, "--backup-to", tmp_path / "evidence")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"kept a copy of {log} in {tmp_path / 'evidence'}\n")
    assert (
        "roll it back in every participant that has not rolled back yet (no readable commit "
        "decision: presumed abort)"
    ) in result.stdout
    assert backups_of(log) == []  # only the --backup-to copy
    with open_coordinator(log) as coord:  # recovers the rest: the other one commits
        assert coord.last_recovery_report is not None
        assert [t.txid for t in coord.last_recovery_report.transactions] == [other]
        assert coord.last_recovery_report.transactions[0].finished
    assert journal_lines(journal, "payment") == [f"commit {other}"]
    assert run("verify", log).exit_code == 0


def test_repair_of_a_finished_transaction_whose_end_is_damaged(log: Path, journal: Path) -> None:
    # Format 1 read a finished transaction's state from its index summary and said there
    # was nothing to settle; format 2 keeps no summary, and its reader stops at the damage:
    # the records fold to decided-commit, so the advice is to commit where not yet done.
    txid = populate(log, journal)["committed"]
    damage(log, txid, 2)  # its Ended
    result = run("repair", log, txid)
    assert result.exit_code == 0, result.output
    assert (
        "commit it in every participant that has not committed yet (payment, stock) (the "
        "log holds a commit decision)"
    ) in result.stdout
    assert run("verify", log).exit_code == 0


def test_repair_of_an_undecided_saga_says_compensate_last_step_first(log: Path) -> None:
    now = time.time()
    steps = tuple(
        MemberSpec(name, "step", {"n": n}) for n, name in enumerate(("reserve", "charge", "ship"))
    )
    with LmdbLog(log) as opened:
        opened.append([Opened("tx-saga", now, Mode.SAGA, steps)])
        opened.append([StepDone("tx-saga", now, 0)])
        opened.append([StepDone("tx-saga", now, 1)])
    damage(log, "tx-saga", 2)  # the charge step's completion
    result = run("repair", log, "tx-saga")
    assert result.exit_code == 0, result.output
    assert "  participant charge (step): enlisted" in result.stdout
    assert "  participant reserve (step): step-done" in result.stdout
    assert (
        "compensate every step that may have run, last step first (ship, charge, reserve) "
        "(no readable commit decision: presumed abort)"
    ) in result.stdout


def test_repair_refuses_a_healthy_transaction_without_force(log: Path, journal: Path) -> None:
    txid = append_unfinished(log, "tx-healthy", journal, decide=True)
    before = (log / "data.mdb").read_bytes()
    result = run("repair", log, txid)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: transaction {txid} is not damaged: its records read back, so recovery can "
        f"finish it (`dtc recover {log} --registry MODULE:ATTRIBUTE`); pass --force to drop "
        "it anyway\n"
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
    txid, seq = damaged_in_doubt
    result = run("repair", log, txid, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["txid"] == txid
    assert out["backup"] == str(backups_of(log)[0])
    assert out["records_removed"] == 4
    assert out["damaged"] == [{"seq": seq, "reason": out["damaged"][0]["reason"]}]
    assert "checksum" in out["damaged"][0]["reason"]
    assert [(r["seq"], r["type"]) for r in out["records"]] == [(0, "opened"), (1, "decided")]
    assert [(p["name"], p["state"], p["factory"]) for p in out["participants"]] == [
        ("payment", "prepared", "file"),
        ("warehouse", "prepared", "file"),
    ]
    assert (out["settle"], out["to_settle"]) == ("commit", ["payment", "warehouse"])
    assert out["next"][0].startswith("settle each participant by hand")
    assert len(out["next"]) == 3


def test_repair_of_a_damaged_index_entry_is_refused(log: Path, journal: Path) -> None:
    # Format 1 took the damaged records' LSNs (--lsn) when the index entry was damaged too;
    # format 2 drops a transaction by its index entry, so it refuses, changing nothing
    # (restore from a backup), and --lsn is refused as a usage error.
    txid = append_unfinished(log, "tx-both", journal, decide=True)
    with raw_tables(log) as (txn, dbs):
        txn.put(txid.encode(), b"bad", db=dbs["txns"])
    problems = run("verify", log, "--json")
    assert problems.exit_code == 4
    assert [p["txid"] for p in json.loads(problems.stdout)["problems"]] == [txid]
    before = (log / "data.mdb").read_bytes()
    result = run("repair", log, txid)
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: the index entry of {txid} is damaged: restore the log from a backup\n"
    )
    with_lsn = run("repair", log, txid, "--lsn", 2)
    assert with_lsn.exit_code == 2
    assert "--lsn is for format-1 logs" in with_lsn.stderr
    assert (log / "data.mdb").read_bytes() == before


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
