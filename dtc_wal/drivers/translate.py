"""Protocol errors in the words of :mod:`dtc_wal.errors`: each
:class:`~dtc_wal.protocol.ProtocolError` becomes its public namesake."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .. import errors
from ..protocol import (
    DuplicateMemberError,
    InvalidEventError,
    InvalidMemberError,
    InvalidOptionError,
    MixedModeError,
    OutOfOrderError,
    ProtocolError,
)

__all__ = ["protocol_errors", "translated"]


def translated(exc: ProtocolError) -> Exception:
    """The :mod:`dtc_wal.errors` namesake of a protocol error (raise it ``from exc``)."""
    if isinstance(exc, DuplicateMemberError):
        return errors.DuplicateParticipantError(str(exc))
    if isinstance(exc, MixedModeError):
        return errors.MixedTransactionError(
            f"{exc} -- use one transaction per style (docs/protocol.md, Mixed transactions)"
        )
    if isinstance(exc, InvalidEventError):
        return errors.TransactionStateError(str(exc))
    if isinstance(exc, InvalidMemberError):
        return errors.InvalidParticipantError(str(exc))
    if isinstance(exc, InvalidOptionError):
        return errors.InvalidOptionError(str(exc))
    if isinstance(exc, OutOfOrderError):
        return errors.InvalidTransitionError(str(exc))
    return exc


@contextlib.contextmanager
def protocol_errors() -> Iterator[None]:
    """Raise the :mod:`dtc_wal.errors` namesake of a protocol error."""
    try:
        yield
    except ProtocolError as exc:
        raise translated(exc) from exc
