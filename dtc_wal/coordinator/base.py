"""What every part of the coordinator shares: its state, and the lookup of a live
transaction. :class:`~dtc_wal.coordinator.core.TransactionCoordinator` puts the parts
together (joining.py, operations.py, core.py)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..clock import Clock
from ..errors import (
    CoordinatorClosedError,
    TransactionFinishedError,
    TransactionStateError,
    UnknownTransactionError,
)
from ..registry import ParticipantRegistry
from ..wal.writer import WriteAheadLog
from .live import LiveTransaction
from .stats import Counters

if TYPE_CHECKING:
    from .background import BackgroundRecovery
    from .driver import Driver

__all__ = ["CoordinatorBase"]


class CoordinatorBase:
    """State of a coordinator (set in ``TransactionCoordinator.__init__``)."""

    registry: ParticipantRegistry
    clock: Clock
    wal: WriteAheadLog
    zombie_timeout: float | None
    max_data_bytes: int | None
    strict: bool
    _driver: Driver
    _background: BackgroundRecovery
    _live: dict[str, LiveTransaction]
    _lock: threading.Lock
    _closed: bool
    _counters: Counters

    if TYPE_CHECKING:

        def rollback_transaction(
            self, txid: str, reason: str = "rolled back by the caller"
        ) -> None: ...

        def _forget(self, tx: LiveTransaction) -> None: ...

    def _check_open(self) -> None:
        if self._closed:
            raise CoordinatorClosedError(
                "this coordinator is closed; open a new TransactionCoordinator on the log"
            )

    def _get_live(self, txid: str) -> LiveTransaction:
        if not isinstance(txid, str):
            raise UnknownTransactionError(repr(txid))
        with self._lock:
            self._check_open()
            tx = self._live.get(txid)
        if tx is not None:
            return tx
        self.wal.flush()  # the lazy records of a transaction that just finished
        view = self.wal.view(txid)
        if view is None:
            raise UnknownTransactionError(txid)
        if view.state.finished:
            raise TransactionFinishedError(txid, view.state.value)
        raise TransactionStateError(
            f"transaction {txid} is {view.state.value} and owned by recovery, not by a "
            "caller; see `dtc show` for its history"
        )
