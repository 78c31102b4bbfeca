"""The README's demo (`python3 dev.py demo` -> `dtc demo`) tells the story it promises."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dtc_wal.cli import cli
from dtc_wal.history import replay
from dtc_wal.states import TxState
from dtc_wal.wal import LogStore, verify_log


def test_demo_rolls_back_the_refused_payment_then_commits(tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = CliRunner().invoke(cli, ["demo", "--log", str(log)])
    assert result.exit_code == 0, result.output
    out = result.output
    # 2PC: refused payment -> nothing kept anywhere; after the top-up -> everything
    assert "insufficient funds" in out
    assert "orders=0 stock=5 wallet=30 emails=0" in out.split("top up")[0].split("->")[-1]
    assert "-> committed   orders=1 stock=3 wallet=40 emails=1" in out
    # the saga compensates, then commits
    assert "-> compensated" in out
    assert "steps: create order, charge, reserve stock, send email" in out
    # the log holds the four transactions, in the states the story says, and is sound
    assert verify_log(log).ok
    store = LogStore(log, readonly=True)
    try:
        states = sorted(
            replay(store.records_of(txid)).state.value for txid, _ in store.iter_summaries()
        )
    finally:
        store.close()
    assert states == sorted([TxState.ABORTED.value, TxState.COMMITTED.value] * 2)
    assert "dtc show" in out
