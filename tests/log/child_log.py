"""A child process for the contract suite: appends until killed, or reads beside a writer.

python tests/log/child_log.py append BACKEND LOCATION COUNT
    opens the log, and for each of COUNT transactions appends Opened and Decided
    durably and Ended lazily, printing ``durable TXID`` once Decided is durable;
python tests/log/child_log.py read BACKEND LOCATION SECONDS
    opens the log read-only and reads it in a loop for SECONDS, printing one JSON
    line: how many passes, the largest number of transactions seen, any damage.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends import BACKENDS  # type: ignore[import-not-found]

from dtc_wal.protocol.records import (
    Decided,
    Ended,
    MemberSpec,
    MemberState,
    Mode,
    Opened,
    Outcome,
    Vote,
)

MEMBERS = (MemberSpec("a", "inv", {"n": 1}), MemberSpec("b", "pay"), MemberSpec("c"))


def append(backend: str, location: str, count: int) -> None:
    log = BACKENDS[backend].open(location)
    print("ready", flush=True)
    for i in range(count):
        txid = f"child-{i:06d}"
        log.append([Opened(txid, time.time(), Mode.TWO_PHASE, MEMBERS)])
        log.append(
            [
                Decided(
                    txid, time.time(), Outcome.COMMIT, ((0, Vote.YES), (1, Vote.YES), (2, Vote.YES))
                )
            ]
        )
        print(f"durable {txid}", flush=True)
        log.append([Ended(txid, time.time(), ((0, MemberState.COMMITTED),))], durable=False)
    log.close()
    print("done", flush=True)


def read(backend: str, location: str, seconds: float) -> None:
    log = BACKENDS[backend].open(location, readonly=True)
    print("ready", flush=True)
    passes = most = 0
    damage: list[str] = []
    shrank = False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stored = list(log.transactions())
        for t in stored + list(log.unfinished()):
            if t.damage is not None:
                damage.append(str(t.damage))
            elif not t.records or type(t.records[0]) is not Opened:
                damage.append(f"{t.txid}: does not start with Opened")
        shrank = shrank or len(stored) < most
        most = max(most, len(stored))
        passes += 1
    log.close()
    print(json.dumps({"passes": passes, "most": most, "damage": damage, "shrank": shrank}))


if __name__ == "__main__":
    command, name, where, amount = sys.argv[1:5]
    if command == "append":
        append(name, where, int(amount))
    else:
        read(name, where, float(amount))
