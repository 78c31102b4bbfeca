"""A child process running one transaction through the Engine with a crash point armed.

python tests/drivers/child_crash_point.py LOG_DIR STATE_DIR POINT SCENARIO
    arms POINT (dtc_wal.testing.arm), prints ``txid TXID``, then runs SCENARIO on durable
    participants (SQLite files in STATE_DIR): ``commit`` (three 2PC participants),
    ``abort`` (the third votes no), ``saga`` (three steps) or ``saga-fail`` (the third
    step fails). Passing the point SIGKILLs it; finishing prints ``survived``, exit 3.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from dtc_wal.drivers import Engine
from dtc_wal.errors import TransactionAborted
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.protocol import Mode
from dtc_wal.registry import ParticipantRegistry
from dtc_wal.testing import arm
from dtc_wal.testing.durable_registry import register_durable

STEPS = ("s0", "s1", "s2")


def main(log_dir: str, state_dir: str, point: str, scenario: str) -> int:
    logging.basicConfig(level=logging.WARNING)  # the point's last words go to stderr
    registry = register_durable(ParticipantRegistry(), state_dir, steps=STEPS)
    log = LmdbLog(log_dir)
    engine = Engine(log, registry)
    txid = engine.begin()
    if scenario.startswith("saga"):
        for step in STEPS:
            fail = scenario == "saga-fail" and step == "s2"
            engine.enlist(txid, step, params={"fail": True} if fail else {}, mode=Mode.SAGA)
    else:
        for name in ("p0", "p1", "p2"):
            params: dict[str, object] = {"name": name}
            if scenario == "abort" and name == "p2":
                params["vote_no"] = True
            engine.enlist(txid, "durable", name=name, params=params)
    print(f"txid {txid}", flush=True)
    arm(point)
    with contextlib.suppress(TransactionAborted):
        engine.commit(txid, {"n": 1})
    print("survived", flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
