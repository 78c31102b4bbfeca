"""A child process committing through the Engine until it is killed.

python tests/drivers/child_engine.py LOG_DIR STATE_DIR THREADS
    commits 2PC transactions of three durable participants (SQLite files in STATE_DIR)
    on THREADS threads, forever; prints ``decided TXID`` each time a commit decision is
    durable (the parent SIGKILLs it after some of those lines).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

from dtc_wal.drivers import Engine
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol.records import Decided, Outcome, Record
from dtc_wal.registry import ParticipantRegistry
from dtc_wal.testing.durable_registry import register_durable

NAMES = ("p0", "p1", "p2")


class Reporting:
    """The log, telling the parent when a commit decision is durable."""

    def __init__(self, log: LmdbLog) -> None:
        self._log = log
        self._lock = threading.Lock()

    def append(self, records: Sequence[Record], *, durable: bool = True) -> None:
        self._log.append(records, durable=durable)
        for r in records:
            if durable and type(r) is Decided and r.outcome is Outcome.COMMIT:
                with self._lock:
                    print(f"decided {r.txid}", flush=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def main(log_dir: str, state_dir: str, threads: int) -> None:
    log = LmdbLog(log_dir)
    registry = register_durable(ParticipantRegistry(), state_dir)
    engine = Engine(Reporting(log), registry)  # type: ignore[arg-type]

    def commit_forever() -> None:
        while True:
            txid = engine.begin()
            for name in NAMES:
                engine.enlist(txid, "durable", name=name, params={"name": name})
            engine.commit(txid, {"n": 1})

    for _ in range(threads):
        threading.Thread(target=commit_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
