"""Run the e-commerce example end to end and check its own invariants.

    python -m examples.ecommerce [--workdir DIR] [--crash-at POINT] [--pg-bindir DIR]

1. Alice's payment is refused (insufficient funds): no order, no stock change, no charge,
   no email.
2. Alice tops up and checks out again: everything commits, one email.
3. Bob's checkout runs in a child coordinator process that is SIGKILLed in the middle of
   the commit; a new coordinator on the same log recovers and finishes it.

Every check prints a PASS or FAIL line; the exit code is 0 only when all of them pass
(1 when one fails, 2 when the example cannot start, e.g. without PostgreSQL binaries).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from dtc_wal import TransactionAborted, TransactionCoordinator, TxState
from dtc_wal.participants import BarrierState
from dtc_wal.testing.crash_at import command as crash_at_command

from . import pg
from .services import (
    INVENTORY_DB,
    ORDERS_DB,
    PaymentLedger,
    Places,
    Shop,
    create_databases,
    money,
)

MARKER = ".dtc-ecommerce-example"
CRASH_POINTS = ("decision.after-commit-log", "commit.after-first", "commit.after-all")
BALANCES = {"alice": 5000, "bob": 10000}  # cents
CHILD_TIMEOUT = 60.0


class WorkdirError(Exception):
    """The --workdir given cannot be used."""


class Checks:
    """Prints one PASS/FAIL line per check and remembers the failures."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def __call__(self, label: str, ok: bool, detail: object = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed.append(label)
        suffix = f"  -- got {detail}" if detail != "" and not ok else ""
        print(f"  {'PASS' if ok else 'FAIL'}  {label}{suffix}", flush=True)
        return ok


class World:
    """Reads what each service holds, independently of the coordinator."""

    def __init__(self, server: Any, places: Places) -> None:
        self.server = server
        self.places = places
        self.admin = server.conninfo("postgres")

    def orders(self, txid: str | None = None) -> int:
        with psycopg.connect(self.places.orders_conninfo) as conn:
            row = conn.execute(
                "SELECT count(*) FROM orders WHERE %s::text IS NULL OR txid = %s", (txid, txid)
            ).fetchone()
        return int(row[0]) if row else -1

    def stock(self, sku: str) -> int:
        with psycopg.connect(self.places.inventory_conninfo) as conn:
            row = conn.execute("SELECT on_hand FROM stock WHERE sku = %s", (sku,)).fetchone()
        return int(row[0]) if row else -1

    def prepared(self) -> list[str]:
        return pg.prepared_gids(self.admin, [ORDERS_DB, INVENTORY_DB])

    def emails(self) -> list[Path]:
        if not self.places.outbox.exists():
            return []
        return sorted(self.places.outbox.glob("*.eml"))  # not a half-written .tmp

    def email(self, txid: str) -> Path:
        return self.places.outbox / f"{txid}.eml"

    def emails_about(self, order_id: str) -> list[Path]:
        """Outbox files that mention ``order_id`` (its confirmation, if sent)."""
        return [e for e in self.emails() if order_id in e.read_text(errors="replace")]

    def summary(self) -> str:
        ledger = PaymentLedger(self.places.ledger)
        charges = ledger.charges()
        return (
            f"orders={self.orders()} stock: mug={self.stock('mug')} "
            f"teapot={self.stock('teapot')} | balances: "
            + " ".join(f"{c}={money(ledger.balance(c))}" for c in BALANCES)
            + f" | charges: {', '.join(f'{money(a)} {s}' for _t, a, s in charges) or 'none'}"
            f" | emails={len(self.emails())} | prepared in PostgreSQL={len(self.prepared())}"
        )


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def say(text: str) -> None:
    print(f"  {text}", flush=True)


# -- the scenarios ------------------------------------------------------------------------------


def scenario_refused(shop: Shop, world: World, check: Checks) -> None:
    section("Scenario 1: payment refused for insufficient funds")
    say(f"before: {world.summary()}")
    say("alice (balance 50.00) checks out 2 x mug at 35.00 = 70.00")
    with shop.coordinator() as coord:
        txid, data = shop.checkout(coord, "alice", "mug", 2)
        reason = ""
        try:
            coord.commit_transaction(txid, data)
        except TransactionAborted as exc:
            reason = exc.reason
        say(f"-> {'rolled back: ' + reason if reason else 'committed (unexpected)'}")
        state = coord.state(txid)
    say(f"after:  {world.summary()}")
    check("[1] payment voted no: insufficient funds", "insufficient funds" in reason, reason)
    check("[1] transaction aborted in the log", state is TxState.ABORTED, state)
    check("[1] no order row", world.orders(txid) == 0, world.orders(txid))
    check("[1] no stock change (mug 10)", world.stock("mug") == 10, world.stock("mug"))
    charges = shop.ledger.charges(txid)
    balance = shop.ledger.balance("alice")
    check("[1] no charge (nothing held or captured)", not charges, charges)
    check("[1] alice's balance unchanged (50.00)", balance == BALANCES["alice"], money(balance))
    check("[1] no email", world.emails() == [], world.emails())
    check("[1] nothing left in pg_prepared_xacts", world.prepared() == [], world.prepared())


def scenario_success(shop: Shop, world: World, check: Checks) -> None:
    section("Scenario 2: success")
    shop.ledger.top_up("alice", 5000)
    say("alice tops up 50.00 and checks out 2 x mug again")
    with shop.coordinator() as coord:
        txid, data = shop.checkout(coord, "alice", "mug", 2)
        coord.commit_transaction(txid, data)
        say(f"-> committed ({data['order_id']})")
        state = coord.state(txid)
    say(f"after:  {world.summary()}")
    check("[2] transaction committed in the log", state is TxState.COMMITTED, state)
    check("[2] order row present", world.orders(txid) == 1, world.orders(txid))
    check("[2] stock decremented (mug 10 -> 8)", world.stock("mug") == 8, world.stock("mug"))
    charges = shop.ledger.charges(txid)
    check("[2] charged once (70.00 captured)", charges == [(txid, 7000, "captured")], charges)
    balance = shop.ledger.balance("alice")
    check("[2] alice's balance 100.00 -> 30.00", balance == 3000, money(balance))
    emails = world.emails()
    check("[2] exactly one email", emails == [world.email(txid)], emails)
    text = world.email(txid).read_text() if emails else ""
    check(
        "[2] the email is alice's order confirmation",
        "To: alice@example.com" in text and data["order_id"] in text,
        text,
    )
    check("[2] nothing left in pg_prepared_xacts", world.prepared() == [], world.prepared())


def run_child(places: Places, crash_at: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(pg.REPO), os.environ.get("PYTHONPATH")])),
    }
    argv = crash_at_command(  # the child arms the point in its own process, then runs
        crash_at,
        "-m",
        "examples.ecommerce.crash_child",
        str(places.workdir),
        places.orders_conninfo,
        places.inventory_conninfo,
    )
    return subprocess.run(
        argv, cwd=pg.REPO, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )


def wait_for(what: str, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout}s")
        time.sleep(0.02)


def logged_state(places: Places, txid: str) -> str:
    """What the log says about ``txid``, read without running recovery."""
    with TransactionCoordinator(places.log, recover=False, recovery_interval=None) as coord:
        view = coord.transaction(txid)
    return "unknown" if view is None else str(view.state)


def scenario_crash(places: Places, world: World, check: Checks, crash_at: str) -> None:
    section(f"Scenario 3: the coordinator is killed mid-commit ({crash_at})")
    say("bob (balance 100.00) checks out 1 x teapot at 42.00 in a child coordinator process")
    say(f"armed at {crash_at} (python -m dtc_wal.testing.crash_at): it SIGKILLs itself there")
    child = run_child(places, crash_at)
    lines = child.stdout.split()
    txid = lines[0] if lines else ""
    killed = child.returncode == -signal.SIGKILL and "committed" not in lines
    say(f"child exited with returncode {child.returncode}")
    if not check("[3] coordinator killed by SIGKILL (returncode -9)", killed, child.stderr):
        return
    # The dead process's PostgreSQL sessions end on their own; wait, so that nothing of it
    # is still running on the server while recovery looks at pg_prepared_xacts.
    wait_for(
        "the end of the killed coordinator's sessions",
        lambda: pg.sessions(world.admin, [ORDERS_DB, INVENTORY_DB]) == 0,
    )
    logged = logged_state(places, txid)
    say(f"txid {txid}")
    say(f"log before recovery: {logged}")
    say(f"before recovery: {world.summary()}")
    order_id = f"ord-{txid[:8]}"
    check(
        "[3] the commit decision was durable before the kill",
        logged == TxState.DECIDED_COMMIT,
        logged,
    )
    if crash_at == "decision.after-commit-log":  # killed before any commit was sent
        prepared, held = world.prepared(), PaymentLedger(places.ledger).charges(txid)
        check("[3] before recovery: order and stock branches prepared", len(prepared) == 2)
        check("[3] before recovery: payment held, not captured", held == [(txid, 4200, "held")])
        check("[3] before recovery: no email", world.emails_about(order_id) == [])

    say("a new coordinator opens the same log with the same registry: recovery runs")
    shop = Shop(places)
    try:
        with shop.coordinator() as coord:
            report = coord.last_recovery_report
            state = coord.state(txid)
            unfinished = coord.unfinished()
        for action in report.transactions:
            say(f"recovery: {action.txid} {action.state_before} -> {action.action}")
        for resource, orphan, what in report.orphans:
            say(f"recovery: {resource} branch of {orphan} -> {what}")
        say(f"after recovery:  {world.summary()}")
        check("[3] recovery finished the transaction", txid in report.finished, report.finished)
        check("[3] committed in the log", state is TxState.COMMITTED, state)
        check("[3] nothing unfinished or in doubt", not unfinished and report.clean, report)
        check("[3] order row present", world.orders(txid) == 1, world.orders(txid))
        check(
            "[3] stock decremented (teapot 3 -> 2)",
            world.stock("teapot") == 2,
            world.stock("teapot"),
        )
        charges = shop.ledger.charges(txid)
        check("[3] charged once (42.00 captured)", charges == [(txid, 4200, "captured")], charges)
        balance = shop.ledger.balance("bob")
        check("[3] bob's balance 100.00 -> 58.00", balance == 5800, money(balance))
        check(
            "[3] payment barrier recorded the commit",
            shop.barrier.state(txid) is BarrierState.COMMITTED,
            shop.barrier.state(txid),
        )
    finally:
        shop.close()
    about = world.emails_about(order_id)
    check("[3] exactly one email for this order", about == [world.email(txid)], about)
    check("[3] two emails in all (scenarios 2 and 3)", len(world.emails()) == 2, world.emails())
    check("[3] no row left in pg_prepared_xacts", world.prepared() == [], world.prepared())


# -- set-up and the entry point ---------------------------------------------------------------


def prepare_workdir(given: Path | None) -> Path:
    """A fresh temp dir, or ``given`` if it is empty or holds an earlier run of this
    example (then that run is removed)."""
    if given is None:
        workdir = Path(tempfile.mkdtemp(prefix="dtc-ecommerce-"))
    else:
        workdir = given.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        entries = list(workdir.iterdir())
        if entries and not (workdir / MARKER).exists():
            raise WorkdirError(
                f"{workdir} is not empty and was not made by this example; pass a new or "
                "empty directory"
            )
        for entry in entries:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    (workdir / MARKER).write_text("work directory of examples/ecommerce; safe to delete\n")
    return workdir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.ecommerce",
        description="dtc-wal e-commerce example: order, payment, inventory and notification "
        "in one transaction, a refused payment, a success, and a coordinator killed "
        "mid-commit then recovered.",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where the coordinator log, payment ledger and barrier, and the outbox go "
        "(default: a new temporary directory, kept afterwards)",
    )
    parser.add_argument(
        "--crash-at",
        choices=CRASH_POINTS,
        default=CRASH_POINTS[0],
        help="crash point at which the scenario-3 coordinator is killed (default: %(default)s)",
    )
    parser.add_argument(
        "--pg-bindir",
        type=Path,
        help="directory holding initdb/pg_ctl/postgres (default: found like the tests do; "
        "DTC_PG_BINDIR is honoured)",
    )
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops PostgreSQL


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        workdir = prepare_workdir(args.workdir)
    except WorkdirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"dtc-wal e-commerce example -- work dir {workdir}", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server = pg.start_server(args.pg_bindir)
    except pg.ServerUnavailable as exc:
        print(f"error: this example needs PostgreSQL server binaries.\n{exc}", file=sys.stderr)
        print(
            "For the same story without PostgreSQL (in memory): python -m dtc_wal demo",
            file=sys.stderr,
        )
        return 2
    check = Checks()
    places = Places(workdir, server.conninfo(ORDERS_DB), server.conninfo(INVENTORY_DB))
    try:
        create_databases(server, places, BALANCES)
        print(
            f"PostgreSQL {pg.server_version(server.conninfo())} started on a unix socket in "
            f"{server.base} (max_prepared_transactions=10); databases {ORDERS_DB}, "
            f"{INVENTORY_DB}",
            flush=True,
        )
        world = World(server, places)
        shop = Shop(places)
        try:
            scenario_refused(shop, world, check)
            scenario_success(shop, world, check)
        finally:
            shop.close()  # the child of scenario 3 takes the log and the barrier
        scenario_crash(places, world, check, args.crash_at)
    except Exception:
        traceback.print_exc()
        check("the example ran to the end", False, "an exception, see above")
    finally:
        server.destroy()
        print(f"\nPostgreSQL stopped, {server.base} removed", flush=True)
    print(f"inspect the coordinator log: python -m dtc_wal list {places.log}")
    elapsed = time.monotonic() - started
    if check.failed:
        print(
            f"RESULT: FAIL -- {len(check.failed)} of {check.passed + len(check.failed)} "
            f"checks failed ({elapsed:.1f}s)",
            flush=True,
        )
        return 1
    print(f"RESULT: PASS -- all {check.passed} checks passed ({elapsed:.1f}s)", flush=True)
    return 0
