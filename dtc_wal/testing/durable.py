"""Durable test participants: their state lives on disk, so a checker can read the truth
after a SIGKILL of the coordinator (or of themselves).

Each participant or saga step *name* keeps one SQLite file, ``<directory>/<name>.sqlite``,
with one row per transaction id, changed by one atomic check-and-set per call. This module
gathers the pieces under one import path:

* :mod:`.durable_store` -- the SQLite file: states, schema, check-and-set, anomalies, the
  unreachable flag (:func:`set_unreachable`);
* :mod:`.durable_participants` -- :class:`DurableParticipant` (2PC) and
  :class:`DurableStep` (saga), with their state tables;
* :mod:`.durable_participants` also has :class:`OnePhaseDurableParticipant` (with
  ``commit_one_phase``) and :class:`ListingDurableParticipant` (``lists_prepared``);
* :mod:`.durable_resource` -- :class:`DurablePreparedResource`, the PreparedResource over
  listing participants' files that recovery asks for orphans;
* :mod:`.durable_registry` -- :func:`register_durable`, the factories recovery rebuilds
  them with (and the resource);
* :mod:`.durable_reader` -- :func:`read_states`, what the checker reads after a kill.
"""

from __future__ import annotations

from .durable_participants import (
    AFTER_LIMIT,
    DurableParticipant,
    DurableStep,
    ListingDurableParticipant,
    OnePhaseDurableParticipant,
)
from .durable_reader import Anomaly, ParticipantStates, read_states
from .durable_registry import (
    LISTING_FACTORY,
    ONE_PHASE_FACTORY,
    PARTICIPANT_FACTORY,
    RESOURCE_NAME,
    register_durable,
)
from .durable_resource import DurablePreparedResource
from .durable_store import (
    APPLIED,
    COMMITTED,
    COMMITTED_ONE_PHASE,
    COMMITTED_STATES,
    COMPENSATED,
    NULL_COMPENSATION,
    NULL_ROLLBACK,
    PREPARED,
    REFUSED,
    ROLLED_BACK,
    ROLLED_BACK_PREPARED,
    UNDONE_STATES,
    set_unreachable,
)

__all__ = [
    "AFTER_LIMIT",
    "APPLIED",
    "COMMITTED",
    "COMMITTED_ONE_PHASE",
    "COMMITTED_STATES",
    "COMPENSATED",
    "LISTING_FACTORY",
    "NULL_COMPENSATION",
    "NULL_ROLLBACK",
    "ONE_PHASE_FACTORY",
    "PARTICIPANT_FACTORY",
    "PREPARED",
    "REFUSED",
    "RESOURCE_NAME",
    "ROLLED_BACK",
    "ROLLED_BACK_PREPARED",
    "UNDONE_STATES",
    "Anomaly",
    "DurableParticipant",
    "DurablePreparedResource",
    "DurableStep",
    "ListingDurableParticipant",
    "OnePhaseDurableParticipant",
    "ParticipantStates",
    "read_states",
    "register_durable",
    "set_unreachable",
]
