"""Reading the durable participants' files, e.g. for the checker after a kill."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from .durable_store import db_path

__all__ = ["Anomaly", "ParticipantStates", "read_states"]


@dataclasses.dataclass(frozen=True, slots=True)
class Anomaly:
    participant: str
    txid: str
    call: str
    state: str | None

    def __str__(self) -> str:
        return f"{self.participant}: {self.call} of {self.txid} in state {self.state or 'none'}"


@dataclasses.dataclass(slots=True)
class ParticipantStates:
    """What the participants in one directory hold: ``states[txid][participant]``."""

    states: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    anomalies: list[Anomaly] = dataclasses.field(default_factory=list)


def read_states(
    directory: str | os.PathLike[str], names: Iterable[str] | None = None
) -> ParticipantStates:
    """Read every participant file in ``directory`` (or those of ``names``), e.g. for the
    checker after a kill."""
    out = ParticipantStates()
    if names is None:
        paths = sorted(Path(directory).glob("*.sqlite"))
    else:
        paths = [p for p in (db_path(directory, n) for n in names) if p.exists()]
    for path in paths:
        name = path.stem
        conn = sqlite3.connect(path, timeout=60.0)  # read-write: may replay a dead writer's WAL
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "txn" not in tables:
                continue
            for txid, state in conn.execute("SELECT txid, state FROM txn"):
                out.states.setdefault(txid, {})[name] = state
            if "anomaly" not in tables:  # made by a version that created tables one by one
                continue
            for txid, call, state in conn.execute("SELECT txid, call, state FROM anomaly"):
                out.anomalies.append(Anomaly(name, txid, call, state))
        finally:
            conn.close()
    return out
