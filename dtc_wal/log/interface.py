"""The contract every transaction log implements: :class:`TransactionLog`.

A log stores format-2 records (:mod:`dtc_wal.protocol.records`) per transaction, in the order
they were appended, and knows only two protocol facts: :class:`~.records.Opened` starts a
transaction and :class:`~.records.Ended` finishes it. Folding a transaction's records into
its state is the protocol's job; the log hands them back as they were written, or says what
stops them being read (:class:`StoredTransaction`).

Backends: :class:`dtc_wal.log.lmdb.LmdbLog` (embedded, the default). A backend passes the
contract suite in ``tests/log/`` (one fixture per backend).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from ..errors import RecordDamagedError
from ..protocol.records import Ended, Record

__all__ = [
    "Compacted",
    "Damage",
    "LogInfo",
    "OnDone",
    "StoredTransaction",
    "TransactionLog",
]

OnDone = Callable[[BaseException | None], None]
"""Told once when a submitted append is durable (None) or refused (the error)."""


class Damage(enum.StrEnum):
    """Which check a damaged record failed (:attr:`RecordDamagedError.damage`)."""

    TRUNCATED = "truncated"
    """Shorter than the record header."""
    BAD_LENGTH = "bad-length"
    """The header's payload length does not match the bytes stored."""
    BAD_CHECKSUM = "bad-checksum"
    """The CRC-32 does not match (a changed byte, or a record under another key)."""
    UNKNOWN_VERSION = "unknown-version"
    """The version byte is not one this build reads."""
    BAD_PAYLOAD = "bad-payload"
    """The checksum passes but the payload is not a valid record."""
    GAP = "gap"
    """A record is missing from the transaction's sequence (or the first is not Opened)."""
    INDEX = "index"
    """The transaction's index entry is damaged or names records that are not there."""


@dataclasses.dataclass(frozen=True, slots=True)
class StoredTransaction:
    """One transaction as the log holds it.

    ``records`` are in append order. When ``damage`` is set, ``records`` holds only the
    records before the damaged one (possibly none): the transaction cannot be folded
    safely, and its participants need an operator (it is reported in doubt). Damage never
    hides other transactions.
    """

    txid: str
    records: tuple[Record, ...]
    damage: RecordDamagedError | None = None

    @property
    def finished(self) -> bool:
        """The last record is :class:`~.records.Ended` and nothing is damaged."""
        return self.damage is None and bool(self.records) and type(self.records[-1]) is Ended


@dataclasses.dataclass(frozen=True, slots=True)
class LogInfo:
    """What :meth:`TransactionLog.info` reports."""

    location: str
    """Where the log lives (a directory, or a database without its password)."""
    format: int
    size: int
    """Bytes the log occupies in storage (the file, for LMDB)."""
    map_used: int
    """Bytes of the map in use (LMDB; equal to ``size`` for stores without a map)."""
    map_size: int
    """The current map size; it grows by doubling up to ``max_map_size``."""
    max_map_size: int
    """Appends fail with LogFullError once the map cannot grow past this."""
    records: int
    transactions: int
    unfinished: int
    syncs: int
    """Durable store commits since this log object was opened."""
    last_sync: float | None
    """Epoch seconds of the last durable commit by this log object (None: none yet)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Compacted:
    """What :meth:`TransactionLog.compact` deleted."""

    transactions: int
    records: int


@runtime_checkable
class TransactionLog(Protocol):
    """Durable, ordered storage of format-2 records, one sequence per transaction.

    Thread-safe: any number of threads may append and read at once. Order: the records of
    one ``append``/``submit`` call are written together, all or none, in the order given,
    and calls are written in the order they entered the log; so a durable append makes
    every earlier append (lazy ones included) durable too, unless that one was refused.

    What the log refuses (nothing of that call written, other callers unaffected):
    a txid it cannot store (:class:`~dtc_wal.errors.InvalidTransactionIdError`); data or
    params msgpack cannot encode (:class:`~dtc_wal.errors.UnencodableDataError`); an
    ``Opened`` for a txid it already holds, or any other record for a txid it does not hold
    open (:class:`~dtc_wal.errors.InvalidTransitionError`). When storage is full it raises
    :class:`~dtc_wal.errors.LogFullError`: nothing already written is lost, and appends
    succeed again once space is freed (:meth:`compact`) or the log is reopened larger.
    """

    def append(self, records: Sequence[Record], *, durable: bool = True) -> None:
        """Append ``records``; with ``durable``, return once they are synced to storage.

        Concurrent durable appends share one sync (group commit). With ``durable=False``
        (a lazy append) return at once: the records ride the next sync, or a flusher writes
        them after a short delay (about 2 ms); their refusal, if any, is logged (use
        :meth:`submit` to be told). Bad records raise here, before anything is queued.
        An empty ``records`` does nothing.
        """
        ...

    def submit(
        self, records: Sequence[Record], *, durable: bool, on_done: OnDone | None = None
    ) -> None:
        """Queue ``records`` without waiting; call ``on_done(None)`` once they are durable.

        For drivers that must not block (asyncio): ``on_done`` runs once, in the thread
        that wrote the batch, with the error when the append was refused or failed
        (LogFullError, a refused record). Keep it short and never wait for the log in it
        (no :meth:`flush`, no durable :meth:`append`): hand the result on, for example
        with ``loop.call_soon_threadsafe``. ``durable=True`` asks for a write as soon as
        possible; ``durable=False`` lets the records wait for the next batch or the
        flusher's delay. Bad records raise here, before anything is queued.
        """
        ...

    def read(self, txid: str) -> StoredTransaction | None:
        """The transaction's records as durably stored, or None when the log has none.

        Never raises for a txid: one the log could not have stored reads as None.
        Damage comes back in :attr:`StoredTransaction.damage`, not as an exception.
        """
        ...

    def unfinished(self) -> Iterator[StoredTransaction]:
        """Every transaction opened and not ended, oldest first, with its records.

        Reads only unfinished transactions, never the history. A damaged transaction is
        yielded with its damage and the iteration goes on. Transactions that begin or end
        while iterating may or may not be included; the iterator holds no storage
        snapshot between items, so slow consumers do not block writers.
        """
        ...

    def transactions(self, prefix: str = "") -> Iterator[StoredTransaction]:
        """Every stored transaction whose txid starts with ``prefix`` (finished or not),
        in the backend's txid order (LMDB: UTF-8 byte order), damaged ones included."""
        ...

    def compact(self, before: float) -> Compacted:
        """Delete every finished transaction whose ``Ended`` record is older than
        ``before`` (epoch seconds). Never touches an unfinished transaction; runs in
        bounded steps that interleave with appends. The space is reused by later appends
        (shrinking the file is an offline tool's job)."""
        ...

    def info(self) -> LogInfo:
        """Size, map use and maximum, counts, format and the last durable commit."""
        ...

    def flush(self) -> None:
        """Return once everything appended so far, lazy appends included, was written.

        It does not raise what an earlier append met: a refused or failed lazy append is
        reported to its ``on_done``, or logged with its txids.
        """
        ...

    def close(self) -> None:
        """Write what is queued, then release the log (its lock too). Idempotent; appends
        afterwards raise :class:`~dtc_wal.errors.CoordinatorClosedError`."""
        ...
