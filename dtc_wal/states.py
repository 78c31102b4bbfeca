"""The public vocabulary: one enum per concept, the protocol's own
(:mod:`dtc_wal.protocol.vocabulary`).

* :class:`Mode` -- ``2pc`` or ``saga``; :class:`TxState` -- a transaction's state;
* :class:`Outcome` -- what a transaction decided: ``commit`` or ``abort``;
* :class:`MemberState` -- where one participant stands (``prepared``, ``committed``,
  ``rolled-back``, ``step-done``, ...);
* :class:`Vote` -- what ``prepare`` may return besides None (a yes vote):
  ``Vote.READ_ONLY``, also exported as :data:`READ_ONLY`.

Deprecated, for one release: ``ParticipantState`` (use :class:`MemberState`; its values
are the same strings) and ``RecordType`` (format 1's record types: format 2 has record
classes, :mod:`dtc_wal.protocol.records`). Using them warns with DeprecationWarning.
"""

from __future__ import annotations

import warnings
from typing import Any

from .protocol.records import MemberState, Mode, Outcome, Vote
from .protocol.vocabulary import TxState

__all__ = ["READ_ONLY", "MemberState", "Mode", "Outcome", "TxState", "Vote"]

READ_ONLY = Vote.READ_ONLY
"""``return READ_ONLY`` from ``prepare``: the participant changed nothing and takes no part
in phase two (no commit, no rollback), as in Narayana and Bitronix."""

_DEPRECATED = {
    "ParticipantState": "dtc_wal.MemberState (the same values)",
    "RecordType": "the record classes of dtc_wal.protocol.records",
}


def deprecated(name: str) -> Any:
    """The deprecated name ``name``, with a DeprecationWarning; AttributeError otherwise."""
    if name not in _DEPRECATED:
        raise AttributeError(name)
    instead = _DEPRECATED[name]
    warnings.warn(
        f"dtc_wal.{name} is deprecated and goes in the next release: use {instead}",
        DeprecationWarning,
        stacklevel=3,
    )
    if name == "RecordType":
        from .format1.vocabulary import RecordType

        return RecordType
    return MemberState


def __getattr__(name: str) -> Any:
    return deprecated(name)
