"""Every exception dtc-wal raises on purpose.

One root, :class:`DtcError`. Names say whose fault it was: argument errors are also
``ValueError``/``TypeError``/``LookupError`` so generic handlers still work; log errors say
what happened to the log; outcome errors (:class:`TransactionAborted`,
:class:`CommitIncompleteError`) say what happened to a transaction. Every message says what
to do next.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CommitIncompleteError",
    "CoordinatorClosedError",
    "DataTooLargeError",
    "DtcError",
    "DuplicateFactoryError",
    "DuplicateParticipantError",
    "InvalidFactoryError",
    "InvalidOptionError",
    "InvalidParticipantError",
    "InvalidTransactionIdError",
    "InvalidTransitionError",
    "LogCorruptError",
    "LogError",
    "LogFullError",
    "LogLockedError",
    "MixedTransactionError",
    "NotRecoverableError",
    "NotRecoverableWarning",
    "ParticipantSignal",
    "ParticipantTimeoutError",
    "ParticipantUnavailableError",
    "RecordDamagedError",
    "TransactionAborted",
    "TransactionDamagedError",
    "TransactionFinishedError",
    "TransactionStateError",
    "TransientError",
    "UnencodableDataError",
    "UnknownFactoryError",
    "UnknownTransactionError",
    "UnsupportedFormatError",
    "VoteNo",
]


class DtcError(Exception):
    """Root of every error raised by dtc-wal."""


# --- caller mistakes -------------------------------------------------------------------


class UnknownTransactionError(DtcError, LookupError):
    """The transaction id is not known to this coordinator or its log."""

    def __init__(self, txid: str) -> None:
        self.txid = txid
        super().__init__(
            f"unknown transaction {txid!r}: use the id returned by begin_transaction() "
            "on a coordinator that owns this log"
        )

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])


class TransactionStateError(DtcError):
    """The operation is not allowed in the transaction's current state."""


class TransactionFinishedError(TransactionStateError):
    """The transaction already has an outcome; it cannot be changed or extended."""

    def __init__(self, txid: str, outcome: str) -> None:
        self.txid = txid
        self.outcome = outcome
        super().__init__(
            f"transaction {txid} is already {outcome}: begin a new transaction for further work"
        )


class DuplicateParticipantError(DtcError, ValueError):
    """Two participants of one transaction share a name."""


class MixedTransactionError(DtcError, ValueError):
    """2PC participants and saga steps were mixed in one transaction."""


class InvalidParticipantError(DtcError, TypeError):
    """The object given as a participant does not have the methods the protocol needs."""


class NotRecoverableError(InvalidParticipantError):
    """Under ``TransactionCoordinator(strict=True)``: a participant or saga step that
    recovery could not rebuild after a crash (saga callables that are not importable
    module-level functions, a 2PC object enlisted directly). Nothing was enlisted."""


class NotRecoverableWarning(DtcError, UserWarning):
    """Issued, not raised: a saga step registered with callables that recovery could not
    rebuild after a crash (``strict=True`` raises :class:`NotRecoverableError` instead).
    After a crash its transaction is reported in doubt until settled by hand. A
    ``UserWarning``, so ``-W error::UserWarning`` or ``warnings.filterwarnings`` apply."""


class InvalidTransactionIdError(DtcError, ValueError):
    """A transaction id a log cannot store (not a str, empty, not UTF-8 encodable, or
    longer than the log's key limit); nothing of that append was written."""


class UnencodableDataError(DtcError, TypeError):
    """Data, params or a name the log could not read back equal (docs/protocol.md, "What
    the log accepts"); the message names the offending value's path. Nothing was sent or
    logged."""


class DataTooLargeError(UnencodableDataError):
    """Data or params larger, encoded, than the coordinator's ``max_data_bytes``; nothing
    was sent or logged. ``size`` and ``limit`` are in bytes."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(message)


class UnknownFactoryError(DtcError, LookupError):
    """No participant factory is registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateFactoryError(DtcError, ValueError):
    """A participant factory name is registered twice."""


class InvalidFactoryError(DtcError, ValueError, TypeError):
    """A registry registration with a name that is not a non-empty str, or a factory that
    is not callable; nothing was registered. Also a ``ValueError`` and a ``TypeError``
    (what these mistakes raised before), so handlers for either still catch it."""


class InvalidOptionError(DtcError, ValueError, TypeError):
    """An option or argument has a value (or type) the call does not accept: a coordinator
    option, a log path, ``compact_log(keep=)``, a resolution's outcome or reason, ... The
    message names it and what it accepts. Also a ``ValueError`` and a ``TypeError``."""


class CoordinatorClosedError(DtcError):
    """The coordinator was closed; open a new one on the log to continue."""


# --- participant signals ---------------------------------------------------------------


class ParticipantSignal(Exception):
    """Root of what a participant raises to tell the coordinator something.

    Not a :class:`DtcError`: those are what dtc-wal raises to its caller, so an
    ``except DtcError`` around ``commit_transaction`` never catches a participant's vote.
    The caller sees a refusal as :class:`TransactionAborted` with the signal as ``cause``.
    """


class VoteNo(ParticipantSignal):
    """Raised by a participant's ``prepare`` (or a saga action) to refuse, without retry."""


class TransientError(ParticipantSignal):
    """Raised by a participant to ask for a retry with backoff."""


class ParticipantTimeoutError(DtcError, TimeoutError):
    """A participant call did not return within its timeout."""


class ParticipantUnavailableError(DtcError):
    """A participant could not be rebuilt (unknown factory, factory raised, not recoverable);
    its transaction stays unfinished and is reported in doubt."""


# --- outcomes --------------------------------------------------------------------------


class TransactionAborted(DtcError):
    """The transaction was rolled back; ``cause`` says why.

    ``pending`` names participants whose rollback was not acknowledged yet: the outcome is
    abort and recovery keeps retrying them.
    """

    def __init__(
        self,
        txid: str,
        reason: str,
        cause: BaseException | None = None,
        pending: Sequence[str] = (),
    ) -> None:
        self.txid = txid
        self.reason = reason
        self.cause = cause
        self.pending = tuple(pending)
        message = f"transaction {txid} was rolled back: {reason}"
        if self.pending:
            message += (
                f"; rollback not yet acknowledged by {', '.join(self.pending)} "
                "(recovery keeps retrying)"
            )
        super().__init__(message)


class CommitIncompleteError(DtcError):
    """Commit is decided and durable, but some participants have not acknowledged it.

    The outcome is commit and will not change: recovery (at start-up and in the background
    loop) re-sends commit until every participant acknowledges.
    """

    def __init__(self, txid: str, pending: Sequence[str], errors: Sequence[str] = ()) -> None:
        self.txid = txid
        self.pending = tuple(pending)
        self.errors = tuple(errors)
        detail = f" (last errors: {'; '.join(self.errors)})" if self.errors else ""
        super().__init__(
            f"transaction {txid} is decided commit, but {', '.join(self.pending)} "
            f"did not acknowledge yet{detail}; the decision is durable and recovery will "
            "finish it -- do not retry the transaction"
        )


# --- the log ---------------------------------------------------------------------------


class LogError(DtcError):
    """A problem with the write-ahead log itself."""


class LogLockedError(LogError):
    """Another live coordinator holds the log directory."""


class LogFullError(LogError):
    """The log reached its configured maximum size; nothing already logged was lost."""


class LogCorruptError(LogError):
    """A record, an index entry or the log's meta failed its integrity check; it is never
    skipped. Damage to one transaction puts only that one in doubt
    (:class:`TransactionDamagedError`); damage to the log's meta stops the open."""

    def __init__(self, message: str, lsn: int | None = None) -> None:
        self.lsn = lsn
        super().__init__(message)


class UnsupportedFormatError(LogCorruptError):
    """A record or log was written in a format version this build cannot read."""


class TransactionDamagedError(LogCorruptError):
    """An unfinished transaction whose records (or index entry) cannot be read back.

    The coordinator opened anyway: that transaction alone is in doubt, stays unfinished in
    the log and is never driven, resolved or extended. ``txid``, ``lsn`` (None when its index
    entry is what is damaged) and ``reason`` say what is wrong.
    """

    def __init__(self, txid: str, lsn: int | None, reason: str, log: str = "LOG") -> None:
        self.txid = txid
        self.reason = reason
        super().__init__(
            f"transaction {txid} is damaged in the log: {reason.rstrip('.')}. It stays "
            "unfinished and in doubt, and nothing is done with it: settle its participants "
            f"by hand from what `dtc show {log} {txid}` still reads, then stop the "
            f"coordinator and drop it with `dtc repair {log} {txid}` (docs/recovery.md, "
            '"Repairing a damaged log")',
            lsn,
        )


class RecordDamagedError(LogCorruptError):
    """One stored record (log format 2) failed a check: only its transaction is set aside.

    ``txid`` and ``seq`` (the record's place in its transaction; None when what is damaged
    is the transaction's index entry) say where; ``damage`` names the check that failed
    (:class:`dtc_wal.log.Damage`: ``truncated``, ``bad-length``, ``bad-checksum``,
    ``unknown-version``, ``bad-payload``, ``gap``, ``index``).
    """

    def __init__(self, message: str, txid: str, seq: int | None, damage: str) -> None:
        self.txid = txid
        self.seq = seq
        self.damage = damage
        super().__init__(message)


class InvalidTransitionError(LogError, ValueError):
    """A record would break the state order (see docs/protocol.md); it was not appended."""
