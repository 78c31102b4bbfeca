"""A throw-away PostgreSQL server for the example, via the test suite's helper.

The repository's ``tests/pg_server.py`` already knows how to ``initdb`` a cluster into a temp
directory, run it as a non-root user on a unix socket, and stop it again; the example reuses
it instead of keeping a second copy. It is loaded by file path, so nothing else from
``tests/`` comes along.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
HELPER = REPO / "tests" / "pg_server.py"

#: Enough prepared-transaction slots for the example (two branches per checkout).
SETTINGS = {"max_prepared_transactions": "10"}


class ServerUnavailable(RuntimeError):
    """PostgreSQL cannot be started here; the message says what to install or set."""


def _helper() -> ModuleType:
    if "pg_server" in sys.modules:
        return sys.modules["pg_server"]
    spec = importlib.util.spec_from_file_location("pg_server", HELPER)
    if spec is None or spec.loader is None or not HELPER.exists():
        raise ServerUnavailable(
            f"{HELPER} not found: run the example from a checkout of the dtc-wal repository"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules["pg_server"] = module  # before exec, as the importlib recipe does
    spec.loader.exec_module(module)
    return module


def start_server(bindir: Path | None = None) -> Any:
    """Start a fresh PostgreSQL cluster (a ``PgServer``); the caller must ``destroy()`` it.

    Raises :class:`ServerUnavailable` when no server binaries are found."""
    helper = _helper()
    try:
        found = bindir or helper.find_bindir()
    except helper.PgServerError as exc:
        raise ServerUnavailable(str(exc)) from exc
    return helper.PgServer.start(SETTINGS, bindir=found)


def server_version(conninfo: str) -> str:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def prepared_gids(conninfo: str, databases: list[str]) -> list[str]:
    """Rows of ``pg_prepared_xacts`` in ``databases`` (any coordinator)."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = ANY(%s) ORDER BY prepared",
            (databases,),
        ).fetchall()
    return [str(r[0]) for r in rows]


def sessions(conninfo: str, databases: list[str]) -> int:
    """How many backends are connected to ``databases``."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)", (databases,)
        ).fetchone()
    return int(row[0]) if row else 0
