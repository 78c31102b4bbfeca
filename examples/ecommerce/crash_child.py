"""The coordinator process of scenario 3, meant to die in the middle of a commit.

    python -m examples.ecommerce.crash_child WORKDIR ORDERS_CONNINFO INVENTORY_CONNINFO

Run it under ``python -m dtc_wal.testing.crash_at decision.after-commit-log -m
examples.ecommerce.crash_child ...`` (or another crash point): it prints the transaction id,
starts one checkout, and SIGKILLs itself when the coordinator passes that point
(dtc_wal/testing/points.py). What it leaves behind is what a power cut would:
the log, the prepared PostgreSQL branches, the payment hold.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .services import Places, Shop


def main(workdir: str, orders_conninfo: str, inventory_conninfo: str) -> None:
    shop = Shop(Places(Path(workdir), orders_conninfo, inventory_conninfo))
    coord = shop.coordinator()
    txid, data = shop.checkout(coord, "bob", "teapot", 1)
    print(txid, flush=True)
    coord.commit_transaction(txid, data)
    print("committed", flush=True)  # only when the crash point was not reached
    coord.close()
    shop.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
