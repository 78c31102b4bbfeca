"""``dtc status``, ``dtc list``, ``dtc show`` through CliRunner on logs left by coordinators."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_registry import append_records, populate, raw_tables, registry
from click.testing import CliRunner, Result
from dtc_wal.records import LogRecord, lsn_key
from dtc_wal.wal import WriteAheadLog
from dtc_wal.wal.store import DirectoryLock

from dtc_wal import ManualClock, Mode, Outcome, RecordType, TransactionCoordinator
from dtc_wal.cli import cli


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def ids(log: Path, tmp_path: Path) -> dict[str, str]:
    return populate(log, tmp_path / "journal")


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: object) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


# -- status ----------------------------------------------------------------------------------


def test_status_counts_by_state_and_names_the_oldest_unfinished(
    log: Path, ids: dict[str, str]
) -> None:
    out = ok("status", log)
    lines = dict(
        line.split(None, 1) for line in out.splitlines() if line and not line.startswith(" ")
    )
    assert lines["transactions"] == "4: 1 decided-commit, 2 committed, 1 aborted"
    assert f"oldest: {ids['in_doubt']}, decided-commit" in out
    assert "none (no coordinator holds the log)" in out
    assert "in doubt           1 participant(s) in 1 transaction(s)" in out
    assert f"{ids['in_doubt']} warehouse: needs commit, 2 attempt(s)" in out
    assert "ConnectionError: warehouse is unreachable" in out
    assert lines["records"].strip().isdigit()


@pytest.mark.format1
def test_status_json(log: Path, ids: dict[str, str]) -> None:
    status = json.loads(ok("status", log, "--json"))
    assert status["by_state"] == {"decided-commit": 1, "committed": 2, "aborted": 1}
    assert status["transactions"] == 4 and status["unfinished"] == 1
    assert status["oldest_unfinished"]["txid"] == ids["in_doubt"]
    assert [(d["participant"], d["outcome"]) for d in status["in_doubt"]] == [
        ("warehouse", "commit")
    ]
    assert status["live_coordinator"] is None
    assert status["last_lsn"] == status["records"]
    assert 0 < status["used_bytes"] <= status["file_bytes"] <= status["map_size"]


def test_status_reports_map_use_against_what_the_map_grows_to(log: Path) -> None:
    """A log past the 64 MiB a reader maps is not "100.0%" full: the map grows to 8 GiB."""
    now = time.time()
    chunk = "x" * (64 * 1024)
    records = [
        LogRecord(RecordType.BEGUN, "tx-big", now),
        LogRecord(
            RecordType.ENLISTED, "tx-big", now, participant="p", order=0, mode=Mode.TWO_PHASE
        ),
        LogRecord(RecordType.PREPARED, "tx-big", now, participant="p"),
        LogRecord(RecordType.DECIDED_COMMIT, "tx-big", now),
    ]
    records += [
        LogRecord(RecordType.FAILED, "tx-big", now, participant="p", error=chunk, attempts=1)
        for _ in range(1100)  # about 70 MiB
    ]
    with WriteAheadLog(log) as wal:
        wal.append(records)
    size = next(line for line in ok("status", log).splitlines() if line.startswith("size "))
    assert "100.0%" not in size
    assert size.endswith(" map that grows to 8.0 GiB (0.9%)"), size
    status = json.loads(ok("status", log, "--json"))
    assert status["used_bytes"] > 64 * 1024 * 1024
    assert status["default_max_map_size"] == 8 * 1024**3


def test_status_names_the_holder_of_the_lock(log: Path, ids: dict[str, str]) -> None:
    lock = DirectoryLock(log)
    lock.acquire()
    try:
        out = ok("status", log)
    finally:
        lock.release()
    assert "live coordinator   pid " in out


def test_status_of_an_empty_log(log: Path, tmp_path: Path) -> None:
    populate(log, tmp_path / "j")
    ok("compact", log, "--keep", "0s")
    out = ok("status", log)
    assert "unfinished         1" in out  # the in-doubt transaction survives compaction
    assert "transactions       1: 1 decided-commit" in out


def test_status_of_a_missing_log(tmp_path: Path) -> None:
    result = run("status", tmp_path / "nope")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no log at {tmp_path / 'nope'}")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "nope").exists()


# -- awaiting recovery and in doubt ------------------------------------------------------------


def test_right_after_a_crash_participants_await_recovery_they_are_not_in_doubt(
    log: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    txid = append_records(log, "tx-crashed", journal, decide=True, fail="commit")
    out = ok("status", log)
    assert "in doubt           0 participant(s) in 0 transaction(s)\n" in out
    assert "awaiting recovery  2 participant(s) in 1 transaction(s) (not tried yet" in out
    assert f"  {txid} payment: needs commit, not tried yet\n" in out
    assert "0 attempt(s)" not in out
    status = json.loads(ok("status", log, "--json"))
    assert status["in_doubt"] == []
    assert [(d["participant"], d["status"]) for d in status["awaiting_recovery"]] == [
        ("payment", "awaiting recovery"),
        ("stock", "awaiting recovery"),
    ]
    shown = ok("show", log, txid)
    assert "awaiting recovery  payment: needs commit, not tried yet\n" in shown
    assert "in doubt" not in shown
    shown_json = json.loads(ok("show", log, txid, "--json"))
    assert shown_json["in_doubt"] == [] and len(shown_json["awaiting_recovery"]) == 2
    row = ok("list", log).splitlines()[1]
    assert "  awaiting recovery  " in row
    assert json.loads(ok("list", log, "--json"))[0]["recovery"] == "awaiting recovery"

    # recovery tries: payment stays unreachable, so now it is in doubt; stock committed
    assert run("recover", log, "--registry", "cli_registry:registry").exit_code == 4
    out = ok("status", log)
    assert "in doubt           1 participant(s) in 1 transaction(s)\n" in out
    assert "awaiting recovery  0 participant(s) in 0 transaction(s)\n" in out
    assert f"  {txid} payment: needs commit, 4 attempt(s), last error: ConnectionError" in out
    shown = ok("show", log, txid)
    assert "in doubt     payment: needs commit, 4 attempt(s), last error: Conn" in shown
    assert "awaiting recovery" not in shown
    assert json.loads(ok("list", log, "--json"))[0]["recovery"] == "in doubt"


def test_a_participant_that_cannot_be_rebuilt_is_in_doubt_at_once(log: Path) -> None:
    now = time.time()
    with WriteAheadLog(log) as wal:
        wal.append(
            [
                LogRecord(RecordType.BEGUN, "tx-object", now),
                LogRecord(
                    RecordType.ENLISTED,
                    "tx-object",
                    now,
                    participant="legacy",
                    order=0,
                    mode=Mode.TWO_PHASE,
                ),
                LogRecord(RecordType.PREPARED, "tx-object", now, participant="legacy"),
                LogRecord(RecordType.DECIDED_COMMIT, "tx-object", now),
            ]
        )
    out = ok("status", log)
    assert "in doubt           1 participant(s) in 1 transaction(s)\n" in out
    assert "legacy: needs commit, 0 attempt(s), last error: enlisted as an object" in out
    assert "awaiting recovery  0 participant(s)" in out


def test_the_library_flags_what_recovery_has_not_tried(log: Path, tmp_path: Path) -> None:
    txid = append_records(log, "tx-crashed", tmp_path / "journal", decide=True, fail="commit")
    with TransactionCoordinator(
        log, registry=registry, recover=False, recovery_interval=None, max_retries=1
    ) as coord:
        before = coord.in_doubt()
        assert [(d.participant, d.awaiting_recovery, d.status) for d in before] == [
            ("payment", True, "awaiting recovery"),
            ("stock", True, "awaiting recovery"),
        ]
        assert str(before[0]) == f"{txid} payment: needs commit, not tried yet (awaiting recovery)"
        report = coord.recover_now()
        assert [(d.participant, d.awaiting_recovery) for d in report.in_doubt] == [
            ("payment", False)
        ]
        after = coord.in_doubt()
        assert [(d.participant, d.status, d.attempts) for d in after] == [
            ("payment", "in doubt", 2)  # max_retries=1: two attempts
        ]


# -- list ------------------------------------------------------------------------------------


def test_list_prints_one_line_per_transaction_oldest_first(log: Path, ids: dict[str, str]) -> None:
    lines = ok("list", log).splitlines()
    assert lines[0].split() == ["TXID", "STATE", "MODE", "BEGUN", "AGE", "RECOVERY", "PARTICIPANTS"]
    assert [line.split()[0] for line in lines[1:]] == [
        ids["committed"],
        ids["aborted"],
        ids["in_doubt"],
        ids["saga"],
    ]
    row = next(line for line in lines if line.startswith(ids["aborted"]))
    assert row.split()[1:3] == ["aborted", "2pc"]
    assert row.split()[5] == "-"  # finished: nothing for recovery to do
    stuck = next(line for line in lines if line.startswith(ids["in_doubt"]))
    assert "  in doubt  " in stuck  # the warehouse was tried and failed
    assert row.endswith("payment=rolled-back fraud-check=rolled-back")


def test_list_filters_by_state(log: Path, ids: dict[str, str]) -> None:
    committed = ok("list", log, "--state", "committed").splitlines()[1:]
    assert sorted(line.split()[0] for line in committed) == sorted([ids["committed"], ids["saga"]])
    unfinished = ok("list", log, "--state", "unfinished").splitlines()[1:]
    assert [line.split()[0] for line in unfinished] == [ids["in_doubt"]]
    both = ok("list", log, "--state", "aborted", "--state", "decided-commit").splitlines()[1:]
    assert {line.split()[0] for line in both} == {ids["aborted"], ids["in_doubt"]}


def test_list_older_than(log: Path, tmp_path: Path) -> None:
    old = populate(log, tmp_path / "j", clock=ManualClock())  # records from November 2023
    new = populate(log, tmp_path / "j")
    listed = json.loads(ok("list", log, "--older-than", "30d", "--json"))
    assert {t["txid"] for t in listed} == set(old.values())
    assert all(t["age_seconds"] > 30 * 86400 for t in listed)
    recent = json.loads(ok("list", log, "--json"))
    assert {t["txid"] for t in recent} == set(old.values()) | set(new.values())
    assert json.loads(ok("list", log, "--older-than", "5000w", "--json")) == []


def test_list_limit_keeps_the_oldest(log: Path, ids: dict[str, str]) -> None:
    result = run("list", log, "--limit", "2")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == [
        ids["committed"],
        ids["aborted"],
    ]
    assert "2 more" in result.stderr


def test_list_json(log: Path, ids: dict[str, str]) -> None:
    rows = json.loads(ok("list", log, "--json", "--state", "decided-commit"))
    assert len(rows) == 1
    row = rows[0]
    assert row["txid"] == ids["in_doubt"]
    assert row["mode"] == "2pc"
    assert row["participants"] == {"payment": "committed", "warehouse": "prepared"}


def test_list_nothing_matches(log: Path, ids: dict[str, str]) -> None:
    result = run("list", log, "--state", "active")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no matching transactions" in result.stderr


@pytest.mark.parametrize("bad", ["10", "ten minutes", "10x", "", "3d-"])
def test_list_bad_older_than_is_a_usage_error(log: Path, ids: dict[str, str], bad: str) -> None:
    result = run("list", log, "--older-than", bad)
    assert result.exit_code == 2
    assert "Invalid value for '--older-than'" in result.stderr
    assert "e.g. 30s, 10m, 2h" in result.stderr


def test_list_bad_state_is_a_usage_error(log: Path, ids: dict[str, str]) -> None:
    result = run("list", log, "--state", "stuck")
    assert result.exit_code == 2
    assert "'stuck' is not one of" in result.stderr


# -- show ------------------------------------------------------------------------------------


@pytest.mark.format1
def test_show_tells_the_whole_story(log: Path, ids: dict[str, str]) -> None:
    txid = ids["in_doubt"]
    out = ok("show", log, txid)
    assert out.startswith(f"transaction  {txid}\nstate        decided-commit\nmode         2pc\n")
    assert "in doubt     warehouse: needs commit, 2 attempt(s), last error: ConnectionError" in out
    assert f"dtc resolve {log} {txid} --commit --participant warehouse --reason" in out
    timeline = out.split("\ntimeline\n")[1].splitlines()
    assert timeline[0].split() == [
        "LSN",
        "TIME",
        "SINCE",
        "BEGIN",
        "RECORD",
        "PARTICIPANT",
        "DETAILS",
    ]
    records = [line.split()[3] for line in timeline[1:]]
    assert records == [
        "begun",
        "enlisted",
        "enlisted",
        "prepared",
        "prepared",
        "decided-commit",
        "acknowledged",
        "failed",
    ]
    failed = timeline[-1]
    assert 'error="ConnectionError: warehouse is unreachable"' in failed
    assert "attempts=2" in failed
    enlisted = timeline[3]
    assert "factory=file" in enlisted and '"name": "warehouse"' in enlisted


def big_data() -> dict[str, object]:
    nested: object = "bottom"
    for _ in range(10):
        nested = {"down": nested}
    return {
        "order": 1017,
        "text": "y" * 300_000,
        "blob": bytes(range(256)) * 40,
        "items": list(range(1000)),
        "map": {f"k{i:04d}": i for i in range(500)},
        "deep": nested,
    }


def test_show_abridges_big_values_unless_full(log: Path) -> None:
    now = time.time()
    with WriteAheadLog(log) as wal:
        wal.append(
            [
                LogRecord(RecordType.BEGUN, "tx-big", now),
                LogRecord(RecordType.DECIDED_ABORT, "tx-big", now, data=big_data()),
            ]
        )
    out = ok("show", log, "tx-big")
    data = next(line for line in out.splitlines() if "decided-abort" in line and "data=" in line)
    assert len(data) < 3000  # not 300 KB
    assert '"order": 1017' in data
    assert '"text": "' + "y" * 200 + '...[+299800 chars]"' in data
    assert "...[+10144 bytes]" in data  # 10240 bytes, 96 shown
    assert '"deep": {"down": {"down": {"down": {"down": {"down": "...[a map of 1 item(s)]"' in data
    assert '"items": [0, 1, 2' in data and "...[+980 items]" in data
    assert '"k0019": 19, "...": "[+480 items]"' in data
    assert "k0020" not in data
    assert out.rstrip().splitlines()[-1].startswith("abridged: long values are shortened")
    assert f"`dtc show {log} tx-big --full` prints them whole" in out

    full = ok("show", log, "tx-big", "--full")
    assert "y" * 300_000 in full and "k0499" in full and '"bottom"' in full
    assert "abridged" not in full and "...[+" not in full
    shown = json.loads(ok("show", log, "tx-big", "--json"))
    record = next(r for r in shown["records"] if r["type"] == "decided-abort")
    assert record["data"]["text"] == "y" * 300_000 and len(record["data"]["items"]) == 1000


def test_show_cuts_a_long_printed_value_and_keeps_small_ones_whole(log: Path) -> None:
    now = time.time()
    many = {"many": ["z" * 200] * 30}  # each string fits; 20 of them make 4 KB of text
    with WriteAheadLog(log) as wal:
        wal.append(
            [
                LogRecord(RecordType.BEGUN, "tx-many", now),
                LogRecord(RecordType.DECIDED_ABORT, "tx-many", now, data=many, reason="ok"),
            ]
        )
    out = ok("show", log, "tx-many")
    data = next(line for line in out.splitlines() if "data=" in line)
    value = data.split("data=", 1)[1]
    assert value.startswith('{"many": ["zzz') and value.endswith(" chars]")
    assert len(value) < 2100
    assert " reason=ok " in data  # small values stay whole
    assert "abridged:" in out
    assert "abridged:" not in ok("show", log, "tx-many", "--full")


def test_show_next_step_when_every_participant_acknowledged(log: Path) -> None:
    """A coordinator died between the last acknowledgement and the completion record."""
    now = time.time()
    with WriteAheadLog(log) as wal:
        wal.append(
            [
                LogRecord(RecordType.BEGUN, "tx-acked", now),
                LogRecord(
                    RecordType.ENLISTED,
                    "tx-acked",
                    now,
                    participant="p",
                    factory="file",
                    params={},
                    order=0,
                    mode=Mode.TWO_PHASE,
                ),
                LogRecord(RecordType.PREPARED, "tx-acked", now, participant="p"),
                LogRecord(RecordType.DECIDED_COMMIT, "tx-acked", now),
                LogRecord(
                    RecordType.ACKNOWLEDGED,
                    "tx-acked",
                    now,
                    participant="p",
                    outcome=Outcome.COMMIT,
                ),
            ]
        )
    out = ok("show", log, "tx-acked")
    assert "still to be told: ." not in out
    assert "next         decided commit; every participant has it: recovery only records" in out


def test_show_accepts_a_unique_prefix(log: Path, ids: dict[str, str]) -> None:
    out = ok("show", log, ids["aborted"][:8])
    assert out.startswith(f"transaction  {ids['aborted']}\nstate        aborted")
    assert "decided      rollback at" in out
    assert "fraud-check voted no in prepare" in out


def test_show_ambiguous_prefix(log: Path, tmp_path: Path) -> None:
    append_records(log, "order-1", tmp_path / "j", decide=False)
    append_records(log, "order-2", tmp_path / "j", decide=True)
    result = run("show", log, "order-")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: 'order-' is the start of several transactions (order-1, order-2); give more of it"
    )
    assert "presume abort" in ok("show", log, "order-1")


def test_show_unknown_txid(log: Path, ids: dict[str, str]) -> None:
    result = run("show", log, "no-such-transaction")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: unknown transaction 'no-such-transaction' in {log}")
    assert "Traceback" not in result.output


@pytest.mark.format1
def test_show_json_has_every_record_with_bytes_in_base64(log: Path, ids: dict[str, str]) -> None:
    shown = json.loads(ok("show", log, ids["committed"], "--json"))
    assert shown["state"] == "committed" and shown["outcome"] == "commit"
    assert [p["name"] for p in shown["participants"]] == ["payment", "stock"]
    decided = next(r for r in shown["records"] if r["type"] == "decided-commit")
    assert decided["data"] == {"order": 1, "note": {"$base64": "AAE="}}
    assert [r["lsn"] for r in shown["records"]] == sorted(r["lsn"] for r in shown["records"])
    assert shown["records"][-1]["type"] == "completed"
    assert shown["problems"] == [] and shown["in_doubt"] == []


@pytest.mark.format1
def test_show_a_damaged_record(log: Path, ids: dict[str, str]) -> None:
    shown = json.loads(ok("show", log, ids["saga"], "--json"))
    lsn = shown["records"][2]["lsn"]
    with raw_tables(log) as (txn, dbs):
        txn.put(lsn_key(lsn), b"\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00", db=dbs["records"])
    result = run("show", log, ids["saga"])
    assert result.exit_code == 4
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"  {lsn} "))
    assert row.split()[1:4] == ["?", "?", "DAMAGED"]
    assert f"record at LSN {lsn} fails its checksum" in row
    # what could be read is still shown: the saga's steps and the replay up to the gap
    assert "state        committed per the index; the records are damaged and replay only to" in (
        result.stdout
    )
    assert "participants (replayed up to the damage)" in result.stdout
    assert "reserve" in result.stdout and "in doubt" not in result.stdout
    assert "damaged: replay stopped at LSN" in result.stdout
    assert "PREPARED for participant 'charge' refused" in result.stdout
    as_json = run("show", log, ids["saga"], "--json")
    assert as_json.exit_code == 4
    shown = json.loads(as_json.stdout)
    assert (shown["state"], shown["replayed_state"]) == ("committed", "active")
    assert shown["records"][2] == {"lsn": lsn, "damaged": shown["problems"][0]}
    assert "run `dtc verify" in result.stderr
