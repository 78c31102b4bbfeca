"""The four services of the shop, as dtc-wal participants.

* order -- PostgreSQL database ``shop_orders``; a two-phase branch INSERTs the order row,
  prepare is ``PREPARE TRANSACTION``.
* inventory -- PostgreSQL database ``shop_inventory``; a branch UPDATEs the stock (a CHECK
  keeps it from going below 0), prepare is ``PREPARE TRANSACTION``.
* payment -- a payment provider's ledger (SQLite) behind an idempotency barrier (its own
  LMDB directory): prepare authorises (holds) the amount or votes no, commit captures it,
  rollback voids it.
* notification -- an outbox directory: prepare does nothing, commit writes the email.

Every participant is built by a registry factory, so a coordinator opened after a crash
rebuilds them from the ``(name, params)`` in its log and finishes the transaction.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg

from dtc_wal import ParticipantRegistry, TransactionCoordinator, VoteNo
from dtc_wal.participants import IdempotencyBarrier
from dtc_wal.participants.postgres import PostgresResource

#: One id for every branch this shop's coordinator log creates (the gid prefix).
COORDINATOR_ID = "shop"
ORDERS_DB = "shop_orders"
INVENTORY_DB = "shop_inventory"

ORDERS_SCHEMA = """
CREATE TABLE orders (
    order_id    text PRIMARY KEY,
    txid        text NOT NULL UNIQUE,
    customer    text NOT NULL,
    sku         text NOT NULL,
    qty         int  NOT NULL CHECK (qty > 0),
    total_cents int  NOT NULL,
    placed_at   timestamptz NOT NULL DEFAULT now()
);
"""
INVENTORY_SCHEMA = """
CREATE TABLE stock (sku text PRIMARY KEY, on_hand int NOT NULL CHECK (on_hand >= 0));
INSERT INTO stock VALUES ('mug', 10), ('teapot', 3);
"""
PAYMENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (customer TEXT PRIMARY KEY, balance_cents INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS charges (
    txid         TEXT PRIMARY KEY,
    customer     TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('held', 'captured', 'voided'))
);
"""
PRICES = {"mug": 3500, "teapot": 4200}  # cents


def money(cents: int) -> str:
    return f"{cents / 100:.2f}"


# -- payment ------------------------------------------------------------------------------


class PaymentLedger:
    """A payment provider's books: balances and charges (authorise, capture, void).

    A connection per call: the coordinator calls participants from its worker threads.
    ``BEGIN IMMEDIATE`` takes the write lock before reading, so two authorisations cannot
    both spend the same balance."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def create(self, balances: Mapping[str, int]) -> None:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.executescript(PAYMENT_SCHEMA)
        with self._write() as conn:
            conn.executemany("INSERT INTO accounts VALUES (?, ?)", balances.items())

    def top_up(self, customer: str, cents: int) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE accounts SET balance_cents = balance_cents + ? WHERE customer = ?",
                (cents, customer),
            )

    def authorise(self, txid: str, customer: str, cents: int) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM charges WHERE txid = ?", (txid,)).fetchone():
                return  # authorised by an earlier attempt
            balance, held = self._balance(conn, customer)
            if balance - held < cents:
                raise VoteNo(
                    f"insufficient funds: {customer} has {money(balance - held)}, "
                    f"the order costs {money(cents)}"
                )
            conn.execute("INSERT INTO charges VALUES (?, ?, ?, 'held')", (txid, customer, cents))

    def capture(self, txid: str) -> None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT customer, amount_cents, status FROM charges WHERE txid = ?", (txid,)
            ).fetchone()
            if row is None:
                # Commit is only sent after a yes vote, and the vote came after the hold.
                raise RuntimeError(f"no authorisation to capture for {txid}")
            customer, cents, status = row
            if status == "captured":
                return  # a repeated commit (e.g. after a crash between capture and barrier)
            conn.execute("UPDATE charges SET status = 'captured' WHERE txid = ?", (txid,))
            conn.execute(
                "UPDATE accounts SET balance_cents = balance_cents - ? WHERE customer = ?",
                (cents, customer),
            )

    def void(self, txid: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE charges SET status = 'voided' WHERE txid = ? AND status = 'held'", (txid,)
            )

    @staticmethod
    def _balance(conn: sqlite3.Connection, customer: str) -> tuple[int, int]:
        row = conn.execute(
            "SELECT balance_cents FROM accounts WHERE customer = ?", (customer,)
        ).fetchone()
        if row is None:
            raise VoteNo(f"no payment account for {customer}")
        held = conn.execute(
            "SELECT coalesce(sum(amount_cents), 0) FROM charges "
            "WHERE customer = ? AND status = 'held'",
            (customer,),
        ).fetchone()
        return int(row[0]), int(held[0])

    def balance(self, customer: str) -> int:
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            return self._balance(conn, customer)[0]

    def charges(self, txid: str | None = None) -> list[tuple[str, int, str]]:
        """``(txid, amount, status)`` of every charge (of ``txid``)."""
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            rows = conn.execute(
                "SELECT txid, amount_cents, status FROM charges "
                "WHERE ? IS NULL OR txid = ? ORDER BY rowid",
                (txid, txid),
            ).fetchall()
        return [(str(t), int(a), str(s)) for t, a, s in rows]


class Payment:
    """Participant: prepare = authorise (vote no on insufficient funds), commit = capture,
    rollback = void. Wrapped in the idempotency barrier by the registry factory."""

    def __init__(self, ledger: PaymentLedger) -> None:
        self.ledger = ledger

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.ledger.authorise(transaction_id, data["customer"], data["total_cents"])

    def commit(self, transaction_id: str) -> None:
        self.ledger.capture(transaction_id)

    def rollback(self, transaction_id: str) -> None:
        self.ledger.void(transaction_id)


# -- notification --------------------------------------------------------------------------


class Notification:
    """Participant: the email goes to the outbox in the commit phase, never before.

    Its content comes from the enlist ``params`` (they are in the coordinator's log, so a
    coordinator that recovers the transaction can still write it). One file per
    transaction, replaced atomically: a repeated commit leaves exactly one email."""

    def __init__(self, outbox: Path, to: str, subject: str, body: str) -> None:
        self.outbox = outbox
        self.message = EmailMessage()
        self.message["To"] = to
        self.message["From"] = "shop@example.com"
        self.message["Subject"] = subject
        self.message.set_content(body)

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        """Nothing to check and nothing to hold: writing a file cannot be refused."""

    def commit(self, transaction_id: str) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        final = self.outbox / f"{transaction_id}.eml"
        temp = final.with_suffix(".tmp")
        with temp.open("wb") as handle:
            handle.write(bytes(self.message))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)

    def rollback(self, transaction_id: str) -> None:
        """Nothing was written before commit, so there is nothing to take back."""


# -- the shop ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Places:
    """Where one run of the example keeps its state."""

    workdir: Path
    orders_conninfo: str
    inventory_conninfo: str

    @property
    def log(self) -> Path:
        return self.workdir / "coordinator-log"

    @property
    def barrier(self) -> Path:
        return self.workdir / "payment-barrier"

    @property
    def ledger(self) -> Path:
        return self.workdir / "payment-ledger.sqlite"

    @property
    def outbox(self) -> Path:
        return self.workdir / "outbox"


def create_databases(server: Any, places: Places, balances: Mapping[str, int]) -> None:
    """Create and seed both PostgreSQL databases and the payment ledger."""
    for db, schema in ((ORDERS_DB, ORDERS_SCHEMA), (INVENTORY_DB, INVENTORY_SCHEMA)):
        server.create_database(db)
        with psycopg.connect(server.conninfo(db)) as conn:
            conn.execute(schema.encode())
    PaymentLedger(places.ledger).create(balances)


class Shop:
    """The services of one process: the registry a coordinator is opened with, and the
    resources and barrier behind it. Close it when done (it owns the barrier's lock)."""

    def __init__(self, places: Places) -> None:
        self.places = places
        self.ledger = PaymentLedger(places.ledger)
        self.orders = PostgresResource(places.orders_conninfo, coordinator_id=COORDINATOR_ID)
        self.inventory = PostgresResource(places.inventory_conninfo, coordinator_id=COORDINATOR_ID)
        self.barrier = IdempotencyBarrier(places.barrier)
        self.registry = ParticipantRegistry()
        self.orders.register(self.registry, "order")  # factory + prepared-branch lister
        self.inventory.register(self.registry, "inventory")
        self.registry.register("payment", lambda: self.barrier.guard(Payment(self.ledger)))
        self.registry.register("notification", lambda **email: Notification(places.outbox, **email))

    def coordinator(self) -> TransactionCoordinator:
        """Open the coordinator on the shop's log (recovery runs first)."""
        return TransactionCoordinator(self.places.log, registry=self.registry)

    def checkout(
        self, coord: TransactionCoordinator, customer: str, sku: str, qty: int
    ) -> tuple[str, dict[str, Any]]:
        """Enlist the four services in a new transaction; return ``(txid, data)`` for
        ``commit_transaction``. The order and stock changes are made now, inside the
        PostgreSQL branches; nothing is visible to anyone until the commit."""
        txid = coord.begin_transaction()
        total = PRICES[sku] * qty
        order_id = f"ord-{txid[:8]}"
        try:
            with self.orders.branch(txid) as cur:
                cur.execute(
                    "INSERT INTO orders (order_id, txid, customer, sku, qty, total_cents) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (order_id, txid, customer, sku, qty, total),
                )
            self.orders.enlist(coord, txid)
            with self.inventory.branch(txid) as cur:
                cur.execute("UPDATE stock SET on_hand = on_hand - %s WHERE sku = %s", (qty, sku))
            self.inventory.enlist(coord, txid)
            coord.enlist_participant(txid, "payment")
            coord.enlist_participant(
                txid,
                "notification",
                params={
                    "to": f"{customer}@example.com",
                    "subject": f"Order {order_id} confirmed",
                    "body": f"{qty} x {sku}, {money(total)} charged. Thank you, {customer}!",
                },
            )
        except BaseException:
            coord.rollback_transaction(txid, "the checkout could not be prepared")
            raise
        return txid, {"customer": customer, "order_id": order_id, "total_cents": total}

    def close(self) -> None:
        self.orders.close()
        self.inventory.close()
        self.barrier.close()
