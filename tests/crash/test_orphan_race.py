"""Orphan resolution must not roll back a live transaction that skipped the forced opening.

Participants with ``lists_prepared`` let the coordinator queue the opening records lazily,
so while such a transaction prepares the log may not know it. A recovery pass (the
background loop, or ``recover_now``) reads the live transaction ids first, then recovers
the log's unfinished transactions, then asks each PreparedResource what it holds prepared
and rolls back every prepared txid the log shows no decision for, unless it was live when
the pass began. A transaction begun after that snapshot, and prepared by the time the
resource is listed, looks like an orphan: its branches are rolled back while its caller
goes on to decide commit. Found by the random-kill soak (``mixed`` with ``2pc-listing``
and a 20 ms recovery interval); reproduced here without a kill.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dtc_wal import ParticipantRegistry, TransactionCoordinator
from dtc_wal.errors import CommitIncompleteError, TransactionAborted
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.testing.durable import (
    LISTING_FACTORY,
    PREPARED,
    RESOURCE_NAME,
    DurablePreparedResource,
    read_states,
    register_durable,
)
from dtc_wal.testing.workload import coordinator_options


class Gate:
    """A listing participant whose prepare waits until the test opens the gate."""

    lists_prepared = True

    def __init__(self) -> None:
        self.open = threading.Event()

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.open.wait(10.0)

    def commit(self, transaction_id: str) -> None:
        pass

    def rollback(self, transaction_id: str) -> None:
        pass


def test_a_pass_leaves_alone_a_transaction_begun_during_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    registry = register_durable(ParticipantRegistry(), state, listing=["l0"])
    coord = TransactionCoordinator(tmp_path / "log", registry=registry, **coordinator_options())
    assert isinstance(coord.log, LmdbLog)  # format 2
    coord.log.lazy_delay = 1.0  # the opening records stay queued while the test runs
    gate = Gate()
    outcome: dict[str, str] = {}

    def caller() -> None:
        txid = coord.begin_transaction()
        outcome["txid"] = txid
        coord.enlist_participant(txid, LISTING_FACTORY, name="l0", params={"name": "l0"})
        coord.enlist_participant(txid, gate, name="gate")
        try:
            coord.commit_transaction(txid)
            outcome["caller"] = "commit"
        except CommitIncompleteError:
            outcome["caller"] = "commit-incomplete"
        except TransactionAborted:
            outcome["caller"] = "abort"

    thread = threading.Thread(target=caller)

    class BegunDuringThePass(DurablePreparedResource):
        def prepared_transactions(self) -> list[str]:
            # the pass has read the live set; a caller now begins and l0 prepares
            if not thread.is_alive() and "txid" not in outcome:
                thread.start()
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline:
                    held = read_states(state).states
                    if outcome.get("txid") and held.get(outcome["txid"], {}).get("l0"):
                        break
                    time.sleep(0.005)
            return super().prepared_transactions()

    registry.register_resource(
        RESOURCE_NAME, lambda: BegunDuringThePass(state, ["l0"]), replace=True
    )
    try:
        coord.recover_now()
        gate.open.set()
        thread.join(30.0)
        txid = outcome["txid"]
        final = coord.state(txid)
    finally:
        gate.open.set()
        coord.close()
    held = read_states(state)
    assert held.anomalies == []
    assert outcome["caller"] == "commit", (outcome, final.value, held.states[txid])
    assert held.states[txid] == {"l0": "committed"}
    assert PREPARED not in held.states[txid].values()
