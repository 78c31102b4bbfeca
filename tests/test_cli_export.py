"""``dtc export``: every record as JSON, bytes in base64, damaged records kept as evidence."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cli2_bank import damage
from cli_registry import populate
from click.testing import CliRunner, Result

from dtc_wal.cli import cli
from dtc_wal.log.lmdb import LmdbLog


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def ids(log: Path, tmp_path: Path) -> dict[str, str]:
    return populate(log, tmp_path / "journal")


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def record_count(log: Path) -> int:
    with LmdbLog(log, readonly=True) as opened:
        return opened.info().records


def test_export_jsonl_has_every_record_in_transaction_order(log: Path, ids: dict[str, str]) -> None:
    # format 2 has no LSNs: transactions in txid order, each's records in seq order
    result = run("export", log)
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == record_count(log)
    txids = [r["txid"] for r in records]
    assert list(dict.fromkeys(txids)) == sorted(ids.values())  # each one's records together
    for txid in ids.values():
        assert [r["seq"] for r in records if r["txid"] == txid] == list(range(txids.count(txid)))
    assert {r["type"] for r in records if r["seq"] == 0} == {"opened"}
    first = records[0]
    assert first["time"].endswith("Z") and isinstance(first["at"], float)
    opened = next(r for r in records if r["txid"] == ids["committed"])
    assert opened["data"]["note"] == {"$base64": base64.b64encode(b"\x00\x01").decode()}
    failed = next(r for r in records if r["type"] == "failed")
    assert failed["participant"] == "warehouse"
    assert failed["error"] == "ConnectionError: warehouse is unreachable"


def test_export_json_array_to_a_file(log: Path, ids: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    result = run("export", log, "--format", "json", "--output", target)
    assert result.exit_code == 0
    assert result.stdout == ""
    records = json.loads(target.read_text())
    assert len(records) == record_count(log)
    assert records == [json.loads(line) for line in run("export", log).stdout.splitlines()]
    assert {r["type"] for r in records} >= {"opened", "decided", "failed", "acked", "ended"}


def test_export_of_an_empty_log_is_valid_json(log: Path, tmp_path: Path) -> None:
    from dtc_wal import TransactionCoordinator

    TransactionCoordinator(log).close()
    assert json.loads(run("export", log, "--format", "json").stdout) == []
    assert run("export", log).stdout == ""


def test_export_keeps_a_damaged_record_as_evidence(log: Path, ids: dict[str, str]) -> None:
    damage(log, ids["committed"], 1)  # its Decided fails its checksum
    result = run("export", log)
    assert result.exit_code == 4
    records = [json.loads(line) for line in result.stdout.splitlines()]
    mine = [r for r in records if r["txid"] == ids["committed"]]
    # format 2 reads a transaction up to its damage: its Opened, then the mark (the log
    # interface hands back no raw bytes, and the records after it are not read back)
    assert [r.get("type") for r in mine] == ["opened", None]
    assert mine[1]["seq"] == 1
    assert f"record 1 of transaction {ids['committed']} fails its checksum" in mine[1]["damaged"]
    # the export went on past it: every other transaction whole
    others = {r["txid"] for r in records} - {ids["committed"]}
    assert others == set(ids.values()) - {ids["committed"]}
    assert len(records) == record_count(log) - 2 + 1  # Decided and Ended not read; the mark
    assert result.stderr.startswith("Error: 1 damaged transaction(s) exported up to their damage")


def test_export_unknown_format(log: Path, ids: dict[str, str]) -> None:
    result = run("export", log, "--format", "csv")
    assert result.exit_code == 2
    assert "'csv' is not one of 'jsonl', 'json'" in result.stderr


def test_export_missing_log(tmp_path: Path) -> None:
    result = run("export", tmp_path / "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no log at")
