"""Check a log end to end: framing, LSNs, transitions, indexes, meta (``dtc verify``).

Everything is read in one LMDB read transaction, so the check sees one consistent snapshot
even while a live coordinator keeps appending (LMDB readers never block the writer, and the
writer updates records and indexes in one write transaction). Nothing is ever written.

What is checked (docs/log-format.md is the specification):

1. every record: key is an 8-byte LSN >= 1, and the value decodes
   (:func:`dtc_wal.records.decode_record`: length, version, CRC, payload);
2. ``meta``: ``format`` is present and readable; ``last-lsn`` is present when records are,
   and is not below the highest record's LSN (LSNs are never reused);
3. each transaction's records, in log order, replayed through the transition table
   (:mod:`dtc_wal.history`): the first is BEGUN, every other one is allowed;
4. the ``txns`` index: every summary decodes and equals what replaying the records gives
   (state, LSNs, mode, times, participants); no entry without records, no records without
   an entry;
5. the ``unfinished`` index lists exactly the transactions that are not finished.

A damaged record makes the checks of its transaction unreliable, so for the transaction
that owns it (as the index says) only the damage is reported, not the consequences.
"""

from __future__ import annotations

import os

import lmdb

from ..errors import LogError
from .store import LogStore
from .verify_checks import LogVerifier
from .verify_report import Problem, Progress, VerifyReport

__all__ = ["Problem", "Progress", "VerifyReport", "verify_log"]


def verify_log(path: str | os.PathLike[str], progress: Progress | None = None) -> VerifyReport:
    """Check the log at ``path`` read-only and return every problem found.

    Safe while a live coordinator holds the log. Raises :class:`~dtc_wal.errors.LogError`
    only when the log cannot be opened at all (missing, unreadable, unknown format).

    >>> import tempfile
    >>> from dtc_wal import TransactionCoordinator
    >>> path = tempfile.mkdtemp()
    >>> TransactionCoordinator(path).close()
    >>> verify_log(path).summary()
    'ok: checked 0 record(s), 0 transaction(s) (0 unfinished), last LSN 0; no problems'
    """
    try:
        store = LogStore(path, readonly=True)
    except lmdb.Error as exc:
        raise LogError(f"cannot open log at {path}: {exc}") from exc
    try:
        with store.reader() as txn:
            return LogVerifier(store, txn, progress).run()
    finally:
        store.close()
