"""A log written in format 1 by dtc-wal 0.1 (tests/fixtures/format1) still verifies, opens
and recovers: every unfinished transaction reaches the outcome the manifest says, its
participants get exactly the calls it lists, and nothing finished is touched.

The fixture is kept as bytes because the writer that made it goes away with the redesign
(issue 12); this test is what holds later code to reading it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import Journal, RecordingParticipant, RecordingStep

from dtc_wal import ParticipantRegistry, TransactionCoordinator
from dtc_wal.cli import cli

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


def test_the_fixture_verifies_as_written(log: Path) -> None:
    result = CliRunner().invoke(cli, ["verify", str(log)])
    assert result.exit_code == 0, result.output
    assert f"{len(MANIFEST)} transaction(s)" in result.output


def test_it_opens_and_recovers_to_the_outcomes_the_manifest_states(log: Path) -> None:
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
