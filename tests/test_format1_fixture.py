"""A log written in format 1 by dtc-wal 0.1 (tests/fixtures/format1): this version refuses
to open it (coordinator and every `dtc` command but `upgrade`), saying to run `dtc upgrade`,
and leaves it byte for byte as it was; after `dtc upgrade --in-place` it opens and recovers:
every unfinished transaction reaches the outcome the manifest says, its participants get
exactly the calls it lists, and nothing finished is touched.

The fixture is kept as bytes because the writer that made it went away with the redesign
(issue 12; tests/fixtures/format1/make.py is how it was made); this test is what holds
later code to reading it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import Journal, RecordingParticipant, RecordingStep

from dtc_wal import ParticipantRegistry, TransactionCoordinator
from dtc_wal.cli import cli
from dtc_wal.errors import UnsupportedFormatError

FIXTURE = Path(__file__).parent / "fixtures" / "format1"
MANIFEST: dict[str, dict[str, Any]] = json.loads((FIXTURE / "manifest.json").read_text())


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A copy: recovery writes to the log, and the fixture must stay as it was made."""
    target = tmp_path / "mixed"
    shutil.copytree(FIXTURE / "mixed", target)
    return target


def registry_for(journal: Journal) -> ParticipantRegistry:
    registry = ParticipantRegistry()
    registry.register("ledger", lambda account: RecordingParticipant(account, journal))
    registry.register("step", lambda step: RecordingStep(step, journal))
    return registry


def digest(log: Path) -> str:
    return hashlib.sha256((log / "data.mdb").read_bytes()).hexdigest()


def test_the_coordinator_refuses_it_and_names_dtc_upgrade(log: Path) -> None:
    before = digest(log)
    with pytest.raises(UnsupportedFormatError, match=r"format 1.*`dtc upgrade .* --in-place`"):
        TransactionCoordinator(log, recovery_interval=None)
    assert digest(log) == before


@pytest.mark.parametrize(
    "command",
    [["status"], ["list"], ["show", "x"], ["verify"], ["export"], ["compact", "--dry-run"]],
)
def test_every_command_but_upgrade_refuses_it(log: Path, command: list[str]) -> None:
    before = digest(log)
    result = CliRunner().invoke(cli, [command[0], str(log), *command[1:]])
    assert result.exit_code == 1, result.output
    assert "is in format 1" in result.output and f"dtc upgrade {log} --in-place" in result.output
    assert digest(log) == before


def test_after_upgrade_it_opens_and_recovers_to_the_outcomes_the_manifest_states(
    log: Path,
) -> None:
    upgraded = CliRunner().invoke(cli, ["upgrade", str(log), "--in-place"])
    assert upgraded.exit_code == 0, upgraded.output
    journal = Journal()
    with TransactionCoordinator(
        log, registry=registry_for(journal), recovery_interval=None, max_retries=0
    ) as coord:
        for txid, facts in MANIFEST.items():
            assert coord.state(txid).value == facts["after_recovery"], txid
            sent: dict[str, list[str]] = {}
            for who, what in journal.of(txid):
                sent.setdefault(who, []).append(what)
            assert sent == facts["sent"], txid
            if "order" in facts:
                assert [who for who, _ in journal.of(txid)] == facts["order"], txid
            for skipped in facts.get("skipped", []):
                assert coord.transaction(txid).participants[skipped].state.value == "skipped"
        assert coord.in_doubt() == []
        assert coord.unfinished() == []
    result = CliRunner().invoke(cli, ["verify", str(log)])
    assert result.exit_code == 0, result.output
