"""``dtc export``: every record as JSON, bytes in base64, damaged records kept as evidence."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cli_registry import populate, raw_tables
from click.testing import CliRunner, Result
from dtc_wal.records import lsn_key
from dtc_wal.wal.store import LogStore

from dtc_wal.cli import cli


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def ids(log: Path, tmp_path: Path) -> dict[str, str]:
    return populate(log, tmp_path / "journal")


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def record_count(log: Path) -> int:
    store = LogStore(log, readonly=True)
    try:
        return store.counts()["records"]
    finally:
        store.close()


@pytest.mark.format1
def test_export_jsonl_has_every_record_in_lsn_order(log: Path, ids: dict[str, str]) -> None:
    result = run("export", log)
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == record_count(log)
    assert [r["lsn"] for r in records] == list(range(1, len(records) + 1))
    assert {r["txid"] for r in records} == set(ids.values())
    first = records[0]
    assert first["type"] == "begun" and first["time"].endswith("Z")
    assert isinstance(first["at"], float)
    decided = next(r for r in records if r["type"] == "decided-commit")
    assert decided["data"]["note"] == {"$base64": base64.b64encode(b"\x00\x01").decode()}
    failed = next(r for r in records if r["type"] == "failed")
    assert failed["participant"] == "warehouse"
    assert failed["error"] == "ConnectionError: warehouse is unreachable"


@pytest.mark.format1
def test_export_json_array_to_a_file(log: Path, ids: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    result = run("export", log, "--format", "json", "--output", target)
    assert result.exit_code == 0
    assert result.stdout == ""
    records = json.loads(target.read_text())
    assert len(records) == record_count(log)
    assert records[-1]["type"] == "completed"


def test_export_of_an_empty_log_is_valid_json(log: Path, tmp_path: Path) -> None:
    from dtc_wal import TransactionCoordinator

    TransactionCoordinator(log).close()
    assert json.loads(run("export", log, "--format", "json").stdout) == []
    assert run("export", log).stdout == ""


@pytest.mark.format1
def test_export_keeps_a_damaged_record_as_evidence(log: Path, ids: dict[str, str]) -> None:
    garbage = b"\x01\x00\x00\x00\x02ab\x00\x00"
    with raw_tables(log) as (txn, dbs):
        txn.put(lsn_key(3), garbage, db=dbs["records"])
    result = run("export", log)
    assert result.exit_code == 4
    records = [json.loads(line) for line in result.stdout.splitlines()]
    damaged = records[2]
    assert damaged["lsn"] == 3
    assert damaged["raw"] == {"$base64": base64.b64encode(garbage).decode()}
    assert "record at LSN 3" in damaged["damaged"]
    assert len(records) == record_count(log)  # the export went on past it
    assert result.stderr.startswith("Error: 1 damaged record(s) exported")


def test_export_unknown_format(log: Path, ids: dict[str, str]) -> None:
    result = run("export", log, "--format", "csv")
    assert result.exit_code == 2
    assert "'csv' is not one of 'jsonl', 'json'" in result.stderr


def test_export_missing_log(tmp_path: Path) -> None:
    result = run("export", tmp_path / "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no log at")
