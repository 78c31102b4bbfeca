"""A resource manager that lists what it holds prepared, with its state in SQLite, so a
test can kill the coordinator process and read the truth afterwards.

Run as a script, it is the coordinator process: ``python listing_bank.py LOG DB`` (the test
runs it under ``python -m dtc_wal.testing.crash_at POINT``).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Mapping
from typing import Any

from dtc_wal import ParticipantRegistry, TransactionCoordinator


class Bank:
    def __init__(self, path: str) -> None:
        self.path = path
        with self._db() as db:
            db.execute("create table if not exists branch (txid, name, state)")

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("pragma synchronous=full")
        return db

    def set(self, txid: str, name: str | None, state: str) -> None:
        db = self._db()
        try:
            if name is None:  # the resource settles every branch of txid
                db.execute("update branch set state=? where txid=?", (state, txid))
            elif state == "prepared":
                db.execute("insert into branch values (?, ?, ?)", (txid, name, state))
            else:
                db.execute("update branch set state=? where txid=? and name=?", (state, txid, name))
        finally:
            db.close()

    def states(self, state: str) -> set[str]:
        db = self._db()
        try:
            rows = db.execute("select txid from branch where state=?", (state,)).fetchall()
        finally:
            db.close()
        return {r[0] for r in rows}

    # PreparedResource
    def prepared_transactions(self) -> list[str]:
        return sorted(self.states("prepared"))

    def commit_prepared(self, transaction_id: str) -> None:
        self.set(transaction_id, None, "committed")

    def rollback_prepared(self, transaction_id: str) -> None:
        self.set(transaction_id, None, "rolled-back")


class Branch:
    lists_prepared = True

    def __init__(self, bank: Bank, name: str) -> None:
        self.bank = bank
        self.name = name

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.bank.set(transaction_id, self.name, "prepared")

    def commit(self, transaction_id: str) -> None:
        self.bank.set(transaction_id, self.name, "committed")

    def rollback(self, transaction_id: str) -> None:
        self.bank.set(transaction_id, self.name, "rolled-back")


def registry_for(bank: Bank) -> ParticipantRegistry:
    registry = ParticipantRegistry()
    registry.register("bank", lambda name: Branch(bank, name))
    registry.register_resource("bank", lambda: bank)
    return registry


if __name__ == "__main__":
    log_dir, db_path = sys.argv[1], sys.argv[2]
    bank = Bank(db_path)
    coord = TransactionCoordinator(log_dir, registry=registry_for(bank))
    txid = coord.begin_transaction()
    print(txid, flush=True)
    coord.enlist_participant(txid, "bank", name="a", params={"name": "a"})
    coord.enlist_participant(txid, "bank", name="b", params={"name": "b"})
    coord.commit_transaction(txid)  # an armed crash point (the test's crash_at) kills it here
    coord.close()
