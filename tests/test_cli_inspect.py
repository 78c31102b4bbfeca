"""``dtc status``, ``dtc list``, ``dtc show`` through CliRunner on logs left by coordinators."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli2_bank import damage, writer
from cli_registry import append_unfinished, populate, registry
from click.testing import CliRunner, Result

from dtc_wal import ManualClock, TransactionCoordinator
from dtc_wal.cli import cli
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol.records import (
    Acked,
    Decided,
    Failed,
    MemberSpec,
    MemberState,
    Mode,
    Op,
    Opened,
    Outcome,
    Record,
    Vote,
)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def ids(log: Path, tmp_path: Path) -> dict[str, str]:
    return populate(log, tmp_path / "journal")


def write(log: Path, records: list[Record]) -> None:
    """Append format-2 records straight to the log, as a coordinator would have."""
    with LmdbLog(log) as opened:
        opened.append(records)


def opened(txid: str, *members: str, factory: str | None = "file", **data: object) -> Opened:
    specs = tuple(MemberSpec(m, factory, {} if factory else None) for m in members)
    return Opened(txid, time.time(), Mode.TWO_PHASE, specs, data or None)


def commit(txid: str, voters: int) -> Decided:
    return Decided(txid, time.time(), Outcome.COMMIT, tuple((i, Vote.YES) for i in range(voters)))


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


def test_status_json(log: Path, ids: dict[str, str]) -> None:
    status = json.loads(ok("status", log, "--json"))
    assert status["by_state"] == {"decided-commit": 1, "committed": 2, "aborted": 1}
    assert status["transactions"] == 4 and status["unfinished"] == 1
    assert status["oldest_unfinished"]["txid"] == ids["in_doubt"]
    assert [(d["participant"], d["outcome"]) for d in status["in_doubt"]] == [
        ("warehouse", "commit")
    ]
    assert status["live_coordinator"] is None
    assert status["format"] == 2 and status["last_lsn"] is None  # format 2 has no LSNs
    assert status["records"] == 3 + 3 + 4 + 4  # committed, aborted, in doubt, saga
    assert 0 < status["used_bytes"] <= status["file_bytes"] <= status["map_size"]


def test_status_reports_map_use_against_what_the_map_grows_to(log: Path) -> None:
    """A log past the 64 MiB a reader maps is not "100.0%" full: the map grows to 8 GiB."""
    now = time.time()
    chunk = "x" * (64 * 1024)
    records: list[Record] = [opened("tx-big", "p"), commit("tx-big", 1)]
    records += [
        Failed("tx-big", now, 0, Op.COMMIT, chunk, attempts=1)
        for _ in range(1100)  # about 70 MiB
    ]
    write(log, records)
    size = next(line for line in ok("status", log).splitlines() if line.startswith("size "))
    assert "100.0%" not in size
    assert size.endswith(" map that grows to 8.0 GiB (0.9%)"), size
    status = json.loads(ok("status", log, "--json"))
    assert status["used_bytes"] > 64 * 1024 * 1024
    assert status["default_max_map_size"] == 8 * 1024**3


def test_status_names_the_holder_of_the_lock(log: Path, ids: dict[str, str]) -> None:
    with writer(log) as holder:
        out = ok("status", log)
    assert f"live coordinator   pid {holder.pid} on " in out


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
    txid = append_unfinished(log, "tx-crashed", journal, decide=True, fail="commit")
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
    write(log, [opened("tx-object", "legacy", factory=None), commit("tx-object", 1)])
    out = ok("status", log)
    assert "in doubt           1 participant(s) in 1 transaction(s)\n" in out
    assert "legacy: needs commit, 0 attempt(s), last error: enlisted as an object" in out
    assert "awaiting recovery  0 participant(s)" in out


def test_the_library_flags_what_recovery_has_not_tried(log: Path, tmp_path: Path) -> None:
    txid = append_unfinished(log, "tx-crashed", tmp_path / "journal", decide=True, fail="commit")
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


def test_show_tells_the_whole_story(log: Path, ids: dict[str, str]) -> None:
    txid = ids["in_doubt"]
    out = ok("show", log, txid)
    assert out.startswith(f"transaction  {txid}\nstate        decided-commit\nmode         2pc\n")
    assert "in doubt     warehouse: needs commit, 2 attempt(s), last error: ConnectionError" in out
    assert f"dtc resolve {log} {txid} --commit --participant warehouse --reason" in out
    timeline = out.split("\ntimeline\n")[1].splitlines()
    assert timeline[0].split() == [
        "SEQ",
        "TIME",
        "SINCE",
        "BEGIN",
        "RECORD",
        "PARTICIPANT",
        "DETAILS",
    ]
    assert [line.split()[0] for line in timeline[1:]] == ["0", "1", "2", "3"]
    # format 2: Opened names the members, Decided carries the votes, then the failure and
    # the acknowledgement of the participant that did commit
    records = [line.split()[3] for line in timeline[1:]]
    assert records == ["opened", "decided", "failed", "acked"]
    opened_row, decided, failed, acked = timeline[1:]
    assert '"factory": "file", "name": "warehouse"' in opened_row
    assert 'votes={"payment": "yes", "warehouse": "yes"}' in decided
    assert failed.split()[4] == "warehouse"
    assert 'error="ConnectionError: warehouse is unreachable"' in failed
    assert "attempts=2" in failed
    assert 'acks={"payment": "committed"}' in acked


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
    # format 2 keeps the data in the transaction's Opened record
    big = Opened("tx-big", time.time(), Mode.TWO_PHASE, (MemberSpec("p"),), big_data())
    write(log, [big, Decided("tx-big", time.time(), Outcome.ABORT)])
    out = ok("show", log, "tx-big")
    data = next(line for line in out.splitlines() if " opened " in line and "data=" in line)
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
    record = next(r for r in shown["records"] if r["type"] == "opened")
    assert record["data"]["text"] == "y" * 300_000 and len(record["data"]["items"]) == 1000


def test_show_cuts_a_long_printed_value_and_keeps_small_ones_whole(log: Path) -> None:
    many = {"many": ["z" * 200] * 30}  # each string fits; 20 of them make 4 KB of text
    first = Opened("tx-many", time.time(), Mode.TWO_PHASE, (MemberSpec("p"),), many)
    write(log, [first, Decided("tx-many", time.time(), Outcome.ABORT, reason="ok")])
    out = ok("show", log, "tx-many")
    data = next(line for line in out.splitlines() if "data=" in line)
    value = data.split("data=", 1)[1]
    assert value.startswith('{"many": ["zzz') and value.endswith(" chars]")
    assert len(value) < 2100
    assert " mode=2pc " in data  # small values stay whole
    decided = next(line for line in out.splitlines() if line.split()[:1] == ["1"])
    assert decided.endswith(" decided  -            outcome=rollback reason=ok")
    assert "abridged:" in out
    assert "abridged:" not in ok("show", log, "tx-many", "--full")


def test_show_next_step_when_every_participant_acknowledged(log: Path) -> None:
    """A coordinator died between the last acknowledgement and the completion record."""
    acked = Acked("tx-acked", time.time(), ((0, MemberState.COMMITTED),))
    write(log, [opened("tx-acked", "p"), commit("tx-acked", 1), acked])
    out = ok("show", log, "tx-acked")
    assert "still to be told: ." not in out
    assert "next         decided commit; every participant has it: recovery only records" in out


def test_show_accepts_a_unique_prefix(log: Path, ids: dict[str, str]) -> None:
    out = ok("show", log, ids["aborted"][:8])
    assert out.startswith(f"transaction  {ids['aborted']}\nstate        aborted")
    assert "decided      rollback at" in out
    assert "fraud-check voted no in prepare" in out


def test_show_ambiguous_prefix(log: Path, tmp_path: Path) -> None:
    append_unfinished(log, "order-1", tmp_path / "j", decide=False)
    append_unfinished(log, "order-2", tmp_path / "j", decide=True)
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


def test_show_json_has_every_record_with_bytes_in_base64(log: Path, ids: dict[str, str]) -> None:
    shown = json.loads(ok("show", log, ids["committed"], "--json"))
    assert shown["state"] == "committed" and shown["outcome"] == "commit"
    assert [p["name"] for p in shown["participants"]] == ["payment", "stock"]
    assert shown["data"] == {"order": 1, "note": {"$base64": "AAE="}}
    first = shown["records"][0]
    assert first["type"] == "opened" and first["data"] == shown["data"]  # format 2: in Opened
    assert [m["name"] for m in first["members"]] == ["payment", "stock"]
    assert [r["seq"] for r in shown["records"]] == [0, 1, 2]
    assert [r["type"] for r in shown["records"]] == ["opened", "decided", "ended"]
    assert shown["records"][1]["votes"] == {"payment": "yes", "stock": "yes"}
    assert shown["records"][-1]["acks"] == {"payment": "committed", "stock": "committed"}
    assert shown["problems"] == [] and shown["in_doubt"] == []


def test_show_a_damaged_record(log: Path, ids: dict[str, str]) -> None:
    damage(log, ids["saga"], 2)  # the saga's Decided fails its checksum
    result = run("show", log, ids["saga"])
    assert result.exit_code == 4
    row = next(line for line in result.stdout.splitlines() if line.startswith("  2 "))
    assert row.split()[1:4] == ["?", "?", "DAMAGED"]
    assert f"record 2 of transaction {ids['saga']} fails its checksum" in row
    # what could be read is still shown: the saga's first step, folded up to the damage
    assert "state        damaged; the readable records fold to active" in result.stdout
    assert "participants (folded up to the damage)" in result.stdout
    steps = result.stdout.split("participants (folded up to the damage)\n")[1]
    assert "reserve  step-done" in steps and "charge   enlisted" in steps
    assert "in doubt " not in result.stdout.split("participants")[0]
    assert f"damaged: record 2 of transaction {ids['saga']} fails its checksum" in result.stdout
    assert f"run `dtc verify {log}`" in result.stderr
    as_json = run("show", log, ids["saga"], "--json")
    assert as_json.exit_code == 4
    shown = json.loads(as_json.stdout)
    assert (shown["state"], shown["replayed_state"]) == ("damaged", "active")
    assert [r.get("type") for r in shown["records"]] == ["opened", "step-done", None]
    assert shown["records"][2] == {"seq": 2, "damaged": shown["problems"][0]}
