"""A PreparedResource over durable participants' files: what recovery asks for orphans.

:class:`DurablePreparedResource` covers the participants it is given by name (each a
:class:`~.durable_participants.ListingDurableParticipant` keeping
``<directory>/<name>.sqlite``), like an XA ``recover`` over one resource manager:

* ``prepared_transactions()`` -- every txid some of them hold ``prepared``;
* ``commit_prepared(txid)`` -- ``prepared`` -> ``committed`` at each of them;
* ``rollback_prepared(txid)`` -- ``prepared`` -> ``rolled-back-prepared`` at each of them,
  the state that tells the checker the branch was rolled back as an orphan.

Both settle calls are idempotent: a branch that is not prepared (any other state, or no row)
is left alone. While a participant is unreachable (:func:`.durable_store.set_unreachable`)
every call raises ``ConnectionError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .durable_store import COMMITTED, PREPARED, ROLLED_BACK_PREPARED, STATES, DurableFile

__all__ = ["DurablePreparedResource"]


class DurablePreparedResource:
    """Lists and settles the prepared branches of the participants ``names``."""

    def __init__(self, directory: str | os.PathLike[str], names: Iterable[str]) -> None:
        self.files = [DurableFile(directory, name) for name in names]

    def prepared_transactions(self) -> list[str]:
        found: set[str] = set()
        for file in self.files:
            found.update(file.txids_in(PREPARED))
        return sorted(found)

    def commit_prepared(self, transaction_id: str) -> None:
        self._settle("commit-prepared", transaction_id, COMMITTED)

    def rollback_prepared(self, transaction_id: str) -> None:
        self._settle("rollback-prepared", transaction_id, ROLLED_BACK_PREPARED)

    def _settle(self, call: str, txid: str, after: str) -> None:
        table: dict[str | None, str | None] = {state: None for state in STATES}
        table[None] = None  # never prepared here: nothing to do, no row written
        table[PREPARED] = after
        for file in self.files:
            if file.path.exists():
                file._transition(call, txid, table)

    def __repr__(self) -> str:
        return f"DurablePreparedResource({', '.join(f.name for f in self.files)})"
