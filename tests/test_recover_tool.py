"""``dtc_wal.recovery.recover`` and ``dtc recover``: a pass without a coordinator, driving
``workers`` transactions at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from dtc_wal import ParticipantRegistry, TxState
from dtc_wal.cli import cli
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol import fold
from dtc_wal.protocol.records import Decided, MemberSpec, Mode, Opened, Outcome, Vote
from dtc_wal.recovery import recover


class Pair:
    """A participant whose commit returns only once another transaction's commit runs at
    the same time (a two-party barrier): a pass that drives one transaction at a time
    cannot commit it."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def prepare(self, txid: str, data: Any) -> None:
        return None

    def commit(self, txid: str) -> None:
        self.barrier.wait()

    def rollback(self, txid: str) -> None:
        return None


def decided_log(path: Path, count: int) -> list[str]:
    """``count`` transactions decided commit, each with one ``pair`` member, none acked."""
    txids = [f"tx-{i}" for i in range(count)]
    now = time.time()
    with LmdbLog(path) as log:
        for txid in txids:
            opened = Opened(txid, now, Mode.TWO_PHASE, (MemberSpec("p", "pair", {}),))
            log.append([opened, Decided(txid, now, Outcome.COMMIT, ((0, Vote.YES),))])
    return txids


def pair_registry(timeout: float) -> ParticipantRegistry:
    barrier = threading.Barrier(2, timeout=timeout)
    registry = ParticipantRegistry()
    registry.register("pair", lambda: Pair(barrier))
    return registry


def test_recover_drives_workers_transactions_at_once(tmp_path: Path) -> None:
    txids = decided_log(tmp_path / "log", 2)
    report = recover(tmp_path / "log", pair_registry(timeout=10), workers=2)
    assert report.in_doubt == [] and sorted(report.finished) == txids
    with LmdbLog(tmp_path / "log", readonly=True) as log:
        assert all(t.finished for t in log.transactions())


def test_dtc_recover_workers_is_passed_to_the_pass(tmp_path: Path, monkeypatch: Any) -> None:
    """``--workers 2`` commits both (each commit needs the other running); with
    ``--workers 1`` they run one by one, so each commit times out and stays in doubt."""
    import cli_registry

    for workers, state in ((1, TxState.DECIDED_COMMIT), (2, TxState.COMMITTED)):
        log = tmp_path / f"log{workers}"
        decided_log(log, 2)
        monkeypatch.setattr(cli_registry, "registry", pair_registry(timeout=0.5), raising=False)
        result = CliRunner().invoke(
            cli,
            ["recover", str(log), "--registry", "cli_registry:registry", "--workers", str(workers)],
        )
        assert result.exit_code == (4 if workers == 1 else 0), result.output
        with LmdbLog(log, readonly=True) as opened:
            states = {t.txid: fold(t.records).state.value for t in opened.transactions()}
        assert set(states.values()) == {state.value}, (workers, states)
