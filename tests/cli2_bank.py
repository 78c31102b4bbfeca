"""Format-2 logs for the ``dtc`` tests on format 2, written by ``dtc_wal.drivers.Engine``
over ``LmdbLog`` (nothing written by hand), with participants from ``cli_registry``.

``build(log, journal)`` leaves: two 2PC commits, a 2PC abort (a participant votes no), a
committed saga, a transaction decided commit whose participant ``b`` keeps failing (in
doubt), and a second such transaction whose decision record is then damaged on disk.

Run as a script it is a live writer: ``python tests/cli2_bank.py hold LOG JOURNAL`` opens
the log writable, commits one transaction, prints ``ready`` and waits for stdin to close.
``python tests/cli2_bank.py write LOG`` is a writer a test steps by hand: it prints
``ready``, then for each line ``open TXID`` / ``end TXID`` read from stdin durably appends
that transaction's ``Opened`` (one member) / ``Decided`` abort + ``Ended`` and prints ``ok``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import lmdb
from cli_registry import registry

from dtc_wal.drivers import Engine, EngineOptions
from dtc_wal.drivers.calls import CallPolicy
from dtc_wal.errors import CommitIncompleteError, TransactionAborted
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN
from dtc_wal.protocol import Mode
from dtc_wal.protocol.records import Decided, Ended, MemberSpec, MemberState, Opened, Outcome

FAST = EngineOptions(
    policy=CallPolicy(max_retries=2, backoff_initial=0.0, backoff_max=0.0, jitter=0.0)
)


class Step:
    """A saga step given as an object (it cannot be rebuilt: it never needs to be)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def action(self, transaction_id: str, data: object) -> None:
        pass

    def compensate(self, transaction_id: str, data: object) -> None:
        pass


def _two_phase(engine: Engine, journal: Path, fail: dict[str, str]) -> str:
    txid = engine.begin()
    for name in ("a", "b"):
        params = {"journal": str(journal), "name": name}
        if name in fail:
            params["fail"] = fail[name]
        engine.enlist(txid, "file", name=name, params=params)
    with contextlib.suppress(TransactionAborted, CommitIncompleteError):
        engine.commit(txid, {"order": 1})
    return txid


def build(log: Path, journal: Path) -> dict[str, str]:
    """Write the bank above; return its txids by role."""
    with LmdbLog(log) as opened, Engine(opened, registry, FAST) as engine:
        txids = {
            "commit1": _two_phase(engine, journal, {}),
            "commit2": _two_phase(engine, journal, {}),
            "abort": _two_phase(engine, journal, {"b": "prepare"}),
        }
        saga = engine.begin()
        for name in ("reserve", "charge"):
            engine.enlist(saga, Step(name), name=name, mode=Mode.SAGA)
        engine.commit(saga, {"order": 2})
        txids["saga"] = saga
        txids["doubt"] = _two_phase(engine, journal, {"b": "commit"})
        txids["damaged"] = _two_phase(engine, journal, {"b": "commit"})
    damage(log, txids["damaged"], 1)
    return txids


def damage(path: Path, txid: str, seq: int) -> None:
    """Flip the last byte of one stored record (the log closed): its checksum fails."""
    env = lmdb.open(str(path), max_dbs=8)
    try:
        records, txns = env.open_db(b"records"), env.open_db(b"txns")
        with env.begin(write=True) as txn:
            tn_key = txn.get(txid.encode(), db=txns)
            key = RECORD_KEY.pack(TN.unpack(tn_key)[0], seq)
            value = bytearray(txn.get(key, db=records))
            value[-1] ^= 0x01
            txn.put(key, bytes(value), db=records)
    finally:
        env.close()


def hold(log: str, journal: str) -> None:
    with LmdbLog(log) as opened, Engine(opened, registry, FAST) as engine:
        txid = _two_phase(engine, Path(journal), {})
        print(f"ready {txid}", flush=True)
        sys.stdin.read()


@contextlib.contextmanager
def writer(log: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding ``log`` open for writing (:func:`write`), as a live coordinator
    would: its directory lock and LMDB writer, until the block ends. Yields the process
    (``pid``; send ``open TXID`` / ``end TXID`` lines to its stdin and read ``ok``)."""
    here = Path(__file__).resolve().parent
    proc = subprocess.Popen(
        [sys.executable, __file__, "write", str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def write(log: str) -> None:
    with LmdbLog(log) as opened:
        print("ready", flush=True)
        for line in sys.stdin:
            what, txid = line.split()
            now = time.time()
            if what == "open":
                opened.append([Opened(txid, now, Mode.TWO_PHASE, (MemberSpec("a"),))])
            else:
                done = ((0, MemberState.ROLLED_BACK),)
                opened.append([Decided(txid, now, Outcome.ABORT), Ended(txid, now, done)])
            print("ok", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        hold(sys.argv[2], sys.argv[3])
