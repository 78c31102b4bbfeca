"""The README demo: an order touches four services atomically (``dtc demo``).

Order, payment, inventory and notification are participants. The first checkout fails
because the wallet is short: nobody keeps anything (no order, no stock change, no charge,
no email). After a top-up the same checkout commits everywhere. Then the same story as an
ordered saga with compensations. Finally the log itself is printed, record by record.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .coordinator import TransactionCoordinator
from .errors import TransactionAborted, VoteNo
from .registry import ParticipantRegistry

__all__ = ["Shop", "dtc_command", "run_demo"]

Echo = Callable[[str], None]


class Shop:
    """Four toy services sharing one in-memory world (the systems a real shop would call)."""

    def __init__(self, stock: int = 5, wallet: int = 30) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.stock = stock
        self.wallet = wallet
        self.emails: list[str] = []
        self.held: dict[str, dict[str, Any]] = {}  # prepared work per (service, txid)
        self.steps: list[str] = []  # saga steps and compensations run, in order

    def registry(self, saga: Shop | None = None) -> ParticipantRegistry:
        """The 2PC services by name, and the factory ``saga-step`` of ``saga``'s steps."""
        registry = ParticipantRegistry()
        for name in ("order", "payment", "inventory", "notification"):
            registry.register(name, lambda service=name, **_: _Service(self, service))
        saga_shop = saga or self
        registry.register("saga-step", lambda step: _SagaStep(saga_shop, step))
        return registry

    def snapshot(self) -> str:
        return (
            f"orders={len(self.orders)} stock={self.stock} wallet={self.wallet} "
            f"emails={len(self.emails)}"
        )


class _Service:
    """A 2PC participant: prepare checks and holds, commit applies, rollback releases."""

    def __init__(self, shop: Shop, service: str) -> None:
        self.shop = shop
        self.service = service

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        shop, key = self.shop, f"{self.service}:{transaction_id}"
        if self.service == "payment" and shop.wallet < data["price"]:
            raise VoteNo(f"insufficient funds: wallet {shop.wallet} < price {data['price']}")
        if self.service == "inventory" and shop.stock < data["qty"]:
            raise VoteNo(f"out of stock: {shop.stock} < {data['qty']}")
        shop.held[key] = dict(data)

    def commit(self, transaction_id: str) -> None:
        shop = self.shop
        data = shop.held.pop(f"{self.service}:{transaction_id}", None)
        if data is None:
            return  # already committed: commit is idempotent
        if self.service == "order":
            shop.orders[transaction_id] = data
        elif self.service == "payment":
            shop.wallet -= data["price"]
        elif self.service == "inventory":
            shop.stock -= data["qty"]
        else:  # the email goes out only once the outcome is commit
            shop.emails.append(
                f"order {transaction_id[:8]} confirmed: {data['qty']} x {data['sku']}"
            )

    def rollback(self, transaction_id: str) -> None:
        self.shop.held.pop(f"{self.service}:{transaction_id}", None)  # may be unknown: fine


def _two_phase(coord: TransactionCoordinator, shop: Shop, echo: Echo, data: dict[str, Any]) -> str:
    txid = coord.begin_transaction()
    for service in ("order", "payment", "inventory", "notification"):
        coord.enlist_participant(txid, service)
    try:
        coord.commit_transaction(txid, data=data)
        echo(f"  -> committed   {shop.snapshot()}")
    except TransactionAborted as exc:
        echo(f"  -> rolled back ({exc.reason})")
        echo(f"                 {shop.snapshot()}")
    return txid


class _SagaStep:
    """A saga step of the shop, built by the registry factory ``saga-step`` (so recovery
    can rebuild it): ``action`` does the work, ``compensate(txid, data)`` undoes it with
    the data the action got -- after a crash too, since the data is in the log."""

    def __init__(self, shop: Shop, step: str) -> None:
        self.shop = shop
        self.step = step

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        shop, key = self.shop, f"{self.step}:{transaction_id}"
        if self.step == "create order":
            shop.orders[transaction_id] = dict(data)
        elif self.step == "charge":
            if shop.wallet < data["price"]:
                raise VoteNo(f"insufficient funds: wallet {shop.wallet} < price {data['price']}")
            shop.wallet -= data["price"]
        elif self.step == "reserve stock":
            shop.stock -= data["qty"]
        else:
            shop.emails.append(f"order {transaction_id[:8]} confirmed")
        shop.held[key] = dict(data)
        shop.steps.append(self.step)

    def compensate(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        shop = self.shop
        if shop.held.pop(f"{self.step}:{transaction_id}", None) is None:
            return  # never ran, or already undone: compensation is idempotent
        if self.step == "create order":
            shop.orders.pop(transaction_id, None)
        elif self.step == "charge":
            shop.wallet += data["price"]
        elif self.step == "reserve stock":
            shop.stock += data["qty"]
        shop.steps.append(f"undo {self.step}")  # a sent email cannot be unsent


SAGA_STEPS = ("create order", "charge", "reserve stock", "send email")


def _saga(coord: TransactionCoordinator, shop: Shop, echo: Echo, data: dict[str, Any]) -> str:
    shop.steps.clear()
    txid = coord.begin_transaction()
    for step in SAGA_STEPS:  # one factory, four steps: name= and params say which
        coord.register_participant(txid, step, factory="saga-step", params={"step": step})
    try:
        coord.commit_transaction(txid, data=data)
        echo(f"  -> committed   {shop.snapshot()}   steps: {', '.join(shop.steps)}")
    except TransactionAborted as exc:
        echo(f"  -> compensated ({exc.reason})")
        echo(f"                 {shop.snapshot()}   steps: {', '.join(shop.steps)}")
    return txid


def run_demo(log_dir: str | None = None, echo: Echo = print, *, keep: bool = False) -> None:
    """Run the demo on ``log_dir``, which is kept; with None, on a temporary directory that
    is removed at the end unless ``keep``. The footer says how to look at a kept log."""
    if log_dir is not None:
        _demo(log_dir, echo, kept=True)
    elif keep:
        _demo(tempfile.mkdtemp(prefix="dtc-demo-"), echo, kept=True, temporary=True)
    else:
        with tempfile.TemporaryDirectory(prefix="dtc-demo-") as scratch:
            _demo(scratch, echo, kept=False)


def dtc_command() -> str:
    """The shell command that runs this installation's ``dtc``: ``dtc`` when the one on
    PATH runs this Python, the script beside this Python (a virtualenv not activated),
    else ``<this python> -m dtc_wal``, which works wherever dtc-wal is importable."""
    on_path = shutil.which("dtc")
    if on_path is not None and _runs_this_python(Path(on_path)):
        return "dtc"
    beside = Path(sys.executable).parent / "dtc"
    if os.access(beside, os.X_OK) and _runs_this_python(beside):
        return shlex.quote(_shown(beside))
    return f"{shlex.quote(_shown(Path(sys.executable)))} -m dtc_wal"


def _runs_this_python(script: Path) -> bool:
    """True when ``script``'s #! line names this interpreter (or one beside it that is
    the same file, as python3 is to python in a virtualenv)."""
    try:
        with script.open("rb") as f:
            first = f.readline(4096).decode("utf-8", "replace")
    except OSError:
        return False
    if not first.startswith("#!"):
        return False
    words = first[2:].split()
    if not words:
        return False
    named, ours = Path(words[0]), Path(sys.executable)
    if named == ours:
        return True
    try:
        return named.parent == ours.parent and named.samefile(ours)
    except OSError:
        return False


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _demo(log_dir: str, echo: Echo, *, kept: bool, temporary: bool = False) -> None:
    data = {"sku": "A1", "qty": 2, "price": 40}
    if kept:
        echo(f"dtc-wal demo -- log at {log_dir}\n")
    else:
        echo("dtc-wal demo -- log in a temporary directory, removed at the end (--keep keeps it)\n")
    shop, saga_shop = Shop(), Shop()
    with TransactionCoordinator(log_dir, registry=shop.registry(saga=saga_shop)) as coord:
        echo("Two-phase commit: order + payment + inventory + notification")
        echo(f"  start           {shop.snapshot()}")
        echo("  checkout 2 x A1 for 40 with 30 in the wallet:")
        failed = _two_phase(coord, shop, echo, data)
        shop.wallet += 50
        echo("  top up 50, checkout again:")
        ok = _two_phase(coord, shop, echo, data)

        echo("\nOrdered saga: the same checkout as steps with compensations")
        echo(f"  start           {saga_shop.snapshot()}")
        failed_saga = _saga(coord, saga_shop, echo, data)
        saga_shop.wallet += 50
        ok_saga = _saga(coord, saga_shop, echo, data)

        echo("\nThe write-ahead log (each record synced per docs/protocol.md):")
        for label, txid in (
            ("2PC, payment refused", failed),
            ("2PC, committed", ok),
            ("saga, compensated", failed_saga),
            ("saga, committed", ok_saga),
        ):
            view = coord.transaction(txid)
            echo(f"  {txid}  {label}: {view.state.value}")
            for number, fields in _logged(coord, txid):
                kind = fields.pop("type")
                for key in ("txid", "at", "time", "seq"):
                    fields.pop(key, None)
                extra = " ".join(f"{k}={v}" for k, v in fields.items())
                echo(f"    {number:>4}  {kind:<15} {extra}")
    dtc = dtc_command()
    if not kept:
        echo(f"\nThe log was removed. To keep it and inspect it: {dtc} demo --keep")
        return
    where = shlex.quote(log_dir)
    echo(f"\nInspect it yourself: {dtc} show {where} {ok}")
    echo(f"                     {dtc} status {where}")
    if temporary:
        echo(f"(a temporary directory, kept: remove it with  rm -r {where})")


def _logged(coord: TransactionCoordinator, txid: str) -> list[tuple[int, dict[str, Any]]]:
    """The transaction's records as ``(number, fields)``: their places in the transaction."""
    from .cli.commands.reading import record_dict
    from .protocol.records import Opened

    coord.flush()
    stored = coord.log.read(txid)
    records = stored.records if stored is not None else ()
    opened = records[0] if records else None
    names = [m.name for m in opened.members] if isinstance(opened, Opened) else []
    return [(i, record_dict(r, i, names)) for i, r in enumerate(records)]
