"""Module-level saga functions a child process and a recovering process can both import.

Every call appends one JSON line ``[function, txid, data or null]`` to the file named by
``$SAGA_JOURNAL``, fsynced, so what ran survives the SIGKILL of the process that ran it.
``refund`` takes the txid alone (the original contract); the other compensations take
``(txid, data)`` and so get the data their action got, also after a crash.

As a program (the crash tests' child)::

    python -c 'import saga_steps, sys; sys.exit(saga_steps.main(sys.argv[1:]))' \\
        LOG [--lambda] [--fail STEP]

opens a coordinator on LOG, prints the txid, registers order, payment (charge/refund),
[audit, a lambda], shipping and commits with ``DATA`` (plus ``fail``); the crash tests'
child arms a crash point before it calls ``main`` (``dtc_wal.testing.arm_spec``).
``python -m saga_steps paths`` prints the import paths of this module's functions as seen
from ``__main__``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

JOURNAL = "SAGA_JOURNAL"
DATA: dict[str, Any] = {"sku": "A1", "qty": 2, "price": 40, "lines": [{"sku": "A1", "n": 2}]}


def _note(function: str, txid: str, data: Mapping[str, Any] | None) -> None:
    fd = os.open(os.environ[JOURNAL], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        line = json.dumps([function, txid, None if data is None else dict(data)])
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _act(function: str, step: str, txid: str, data: Mapping[str, Any]) -> None:
    _note(function, txid, data)
    if data.get("fail") == step:
        raise RuntimeError(f"{step} failed on purpose")


def create_order(txid: str, data: Mapping[str, Any]) -> None:
    _act("create_order", "order", txid, data)


def cancel_order(txid: str, data: Mapping[str, Any]) -> None:
    _note("cancel_order", txid, data)


def charge(txid: str, data: Mapping[str, Any]) -> None:
    _act("charge", "payment", txid, data)


def refund(txid: str) -> None:
    _note("refund", txid, None)


def ship(txid: str, data: Mapping[str, Any]) -> None:
    _act("ship", "shipping", txid, data)


def unship(txid: str, data: Mapping[str, Any]) -> None:
    _note("unship", txid, data)


def journal(path: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """The calls noted in ``path``, in order."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [tuple(json.loads(line)) for line in f if line.strip()]  # type: ignore[misc]


def main(argv: list[str]) -> int:
    from dtc_wal import TransactionAborted, TransactionCoordinator

    log, options = argv[0], argv[1:]
    data = dict(DATA)
    if "--fail" in options:
        data["fail"] = options[options.index("--fail") + 1]
    coord = TransactionCoordinator(log, recovery_interval=None, zombie_timeout=None)
    txid = coord.begin_transaction()
    print(txid, flush=True)
    coord.register_participant(txid, "order", create_order, cancel_order)
    coord.register_participant(txid, "payment", charge, refund)
    if "--lambda" in options:
        coord.register_participant(
            txid, "audit", lambda t, d: _note("audit", t, d), lambda t: _note("unaudit", t, None)
        )
    coord.register_participant(txid, "shipping", ship, unship)
    with contextlib.suppress(TransactionAborted):  # --fail: compensated, as it should be
        coord.commit_transaction(txid, data)
    coord.close()
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["paths"]:
    from dtc_wal.import_paths import import_path

    print(json.dumps([str(import_path(f)) for f in (create_order, refund)]))
