"""PostgreSQL as a two-phase-commit participant, over psycopg 3's DB-API TPC methods.

Needs the optional dependency: ``pip install dtc-wal[postgres]``. Nothing else in dtc_wal
imports this module, so ``import dtc_wal`` never imports psycopg.

* :class:`PostgresParticipant` (:mod:`.participant`) -- one branch on one database: user
  code runs SQL inside it (``participant.branch(txid)`` or ``participant.connection``),
  ``prepare`` is ``PREPARE TRANSACTION``, ``commit``/``rollback`` are ``COMMIT/ROLLBACK
  PREPARED`` and do nothing when the branch is already finished.
* :class:`PostgresResource` (:mod:`.resource`) -- the database as a resource manager: it
  hands out participants (also to the registry, so recovery can rebuild them) and
  implements :class:`~dtc_wal.participant.PreparedResource`, listing the prepared
  transactions that carry this coordinator's id so recovery can finish or roll back orphans.

Transaction ids on the server (see docs/participants.md)::

    xid  = (FORMAT_ID, gtrid, bqual)
    gtrid = "dtc:" + coordinator_id + ":" + txid        (at most 64 characters)
    bqual = branch name (default: the database name)    (at most 64 characters)
    gid  = f"{FORMAT_ID}_{base64(gtrid)}_{base64(bqual)}"  (psycopg's JDBC-compatible form)

Prepared transactions are cluster-wide but must be finished from the database they were
prepared in, so a resource lists and finishes only those of its own database: register one
resource per database.
"""

from __future__ import annotations

try:
    import psycopg  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "dtc_wal.participants.postgres needs psycopg 3: pip install 'dtc-wal[postgres]'"
    ) from exc

from ._xid import FORMAT_ID, gtrid_prefix
from .participant import PostgresParticipant
from .resource import PostgresResource

__all__ = ["FORMAT_ID", "PostgresParticipant", "PostgresResource", "gtrid_prefix"]
