"""A coordinator process for tests/postgres/test_postgres_crash.py, meant to die.

    python crash_worker.py LOG_DIR CONNINFO_A CONNINFO_B COORDINATOR_ID

Moves 30 from account 1 of database A to account 2 of database B in one two-phase
transaction, after printing its txid. Run it under ``python -m dtc_wal.testing.crash_at
<crash point>`` and it SIGKILLs itself at that point (dtc_wal/testing/points.py).
"""

from __future__ import annotations

import sys

from dtc_wal import ParticipantRegistry, TransactionCoordinator
from dtc_wal.participants.postgres import PostgresResource


def main(log_dir: str, conninfo_a: str, conninfo_b: str, coordinator_id: str) -> None:
    registry = ParticipantRegistry()
    bank_a = PostgresResource(conninfo_a, coordinator_id=coordinator_id)
    bank_b = PostgresResource(conninfo_b, coordinator_id=coordinator_id)
    bank_a.register(registry, "bank_a")
    bank_b.register(registry, "bank_b")
    coord = TransactionCoordinator(log_dir, registry=registry, recovery_interval=None)
    txid = coord.begin_transaction()
    print(txid, flush=True)
    with bank_a.branch(txid) as cur:
        cur.execute("UPDATE accounts SET balance = balance - 30 WHERE id = 1")
    with bank_b.branch(txid) as cur:
        cur.execute("UPDATE accounts SET balance = balance + 30 WHERE id = 2")
    bank_a.enlist(coord, txid)
    bank_b.enlist(coord, txid)
    coord.commit_transaction(txid)
    print("committed", flush=True)
    coord.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
