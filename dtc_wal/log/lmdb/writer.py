"""Appending format-2 records: the LMDB side of group commit (:class:`Appender`).

The appender keeps, in memory, the transaction number and next sequence of every
unfinished transaction (loaded from the ``unfinished`` table at open; the directory lock
makes this process the only writer). A batch is framed and put in one write transaction:
an ``Opened`` takes the next transaction number, is put with ``append=True`` and enters
``txns`` and ``unfinished``; later records go to their transaction's range; ``Ended``
leaves ``unfinished``. No summary or index is rewritten per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lmdb

from ...errors import InvalidTransitionError
from .codec import RECORD_KEY, TN, EncodedRecord, frame
from .layout import TYPE_CODES
from .store import LmdbStore

__all__ = ["Appender"]

_OPENED = 1
_ENDED = 5
_NAMES = {code: kind.__name__ for kind, code in TYPE_CODES.items()}

Entry = Sequence[EncodedRecord]
"""One append: its records, written together or not at all."""

_ABSENT: Any = object()  # not open in this log: never opened, or ended before this batch


class Appender:
    """Implements :class:`dtc_wal.log.group_commit.BatchStore` for a format-2 LMDB log."""

    def __init__(self, store: LmdbStore) -> None:
        self._store = store
        # Invariant: _live holds exactly the transactions in the `unfinished` table, as
        # txid -> [transaction number, next sequence]; only the batch leader changes it.
        self._live: dict[str, list[int]] = {}
        self._next_tn = 1
        self._load()

    def _load(self) -> None:
        store = self._store
        with store.reader() as txn:
            last = 0
            raw = txn.get(b"last-tn", db=store.meta)
            if raw is not None and len(raw) == TN.size:
                last = TN.unpack(raw)[0]
            with txn.cursor(db=store.records) as cur:
                if cur.last() and len(cur.key()) >= TN.size:
                    last = max(last, TN.unpack(cur.key()[: TN.size])[0])
            self._next_tn = last + 1
            with (
                txn.cursor(db=store.unfinished) as cur,
                txn.cursor(db=store.records) as rec,
            ):
                for tn_key, txid in cur:
                    if len(tn_key) != TN.size:
                        continue  # damage: the reader reports it
                    tn = TN.unpack(tn_key)[0]
                    after = rec.set_range(RECORD_KEY.pack(tn + 1, 0))
                    found = rec.prev() if after else rec.last()
                    key = rec.key() if found else b""
                    seq = 0
                    if len(key) == RECORD_KEY.size and key[: TN.size] == tn_key:
                        seq = RECORD_KEY.unpack(key)[1] + 1
                    self._live[bytes(txid).decode("utf-8", "replace")] = [tn, seq]

    def write_batch(self, batch: Sequence[Entry]) -> list[BaseException | None]:
        """Frame and put every entry in one synced write transaction (group commit)."""
        outcome: list[BaseException | None] = []
        staged: dict[str, list[int] | None] = {}  # this batch's changes; None: ended
        store = self._store
        live = self._live

        def body(txn: lmdb.Transaction) -> int:
            outcome.clear()
            staged.clear()
            next_tn = self._next_tn
            put = txn.put
            records, txns, unfinished = store.records, store.txns, store.unfinished
            for entry in batch:
                if len(entry) == 1:  # the common case, without a plan
                    txid, key, code, _at, payload = entry[0]
                    state = staged[txid] if txid in staged else live.get(txid, _ABSENT)
                    if code == _OPENED:
                        # put(overwrite=False) is False when txns already holds the txid.
                        tn_key = TN.pack(next_tn)
                        if state is not _ABSENT or not put(key, tn_key, db=txns, overwrite=False):
                            outcome.append(_refusal(txid, code, state, True))
                            continue
                        tn, seq = next_tn, 0
                        next_tn += 1
                    elif state is _ABSENT or state is None:
                        outcome.append(_refusal(txid, code, state, _held(txn, store, key)))
                        continue
                    else:
                        tn, seq = state
                    rkey = RECORD_KEY.pack(tn, seq)
                    if code == _OPENED:
                        put(rkey, frame(rkey, payload), db=records, append=True)
                        put(tn_key, key, db=unfinished, append=True)
                    else:
                        put(rkey, frame(rkey, payload), db=records)
                        if code == _ENDED:
                            txn.delete(TN.pack(tn), db=unfinished)
                    staged[txid] = None if code == _ENDED else [tn, seq + 1]
                    outcome.append(None)
                    continue
                try:
                    places, states, opened = self._plan(txn, entry, staged, next_tn)
                except InvalidTransitionError as exc:
                    outcome.append(exc)
                    continue
                for (_txid, key, code, _at, payload), (tn, seq) in zip(entry, places, strict=True):
                    rkey = RECORD_KEY.pack(tn, seq)
                    value = frame(rkey, payload)
                    if code == _OPENED:
                        put(rkey, value, db=records, append=True)
                        tn_key = TN.pack(tn)
                        put(key, tn_key, db=txns)
                        put(tn_key, key, db=unfinished, append=True)
                    else:
                        put(rkey, value, db=records)
                        if code == _ENDED:
                            txn.delete(TN.pack(tn), db=unfinished)
                staged.update(states)
                next_tn += opened
                outcome.append(None)
            return next_tn

        next_tn = store.write(body)
        # Committed: the batch is durable, so the live state may follow it.
        self._next_tn = next_tn
        for txid, state in staged.items():
            if state is None:
                live.pop(txid, None)
            else:
                live[txid] = state
        return outcome

    def _plan(
        self,
        txn: lmdb.Transaction,
        entry: Entry,
        staged: dict[str, list[int] | None],
        next_tn: int,
    ) -> tuple[list[tuple[int, int]], dict[str, list[int] | None], int]:
        """Where each record of a multi-record ``entry`` goes, the states after it, and
        how many transactions it opens; InvalidTransitionError refuses the entry alone."""
        places: list[tuple[int, int]] = []
        states: dict[str, list[int] | None] = {}
        opened = 0
        for txid, key, code, _at, _payload in entry:
            if txid in states:
                state = states[txid]
            elif txid in staged:
                state = staged[txid]
            else:
                state = self._live.get(txid, _ABSENT)
            if code == _OPENED:
                if state is not _ABSENT or txn.get(key, db=self._store.txns) is not None:
                    raise _refusal(txid, code, state, True)
                state = [next_tn + opened, 0]
                opened += 1
            elif state is _ABSENT or state is None:
                raise _refusal(txid, code, state, _held(txn, self._store, key))
            else:
                state = list(state)  # a private copy: a refused entry changes nothing
            places.append((state[0], state[1]))
            state[1] += 1
            states[txid] = None if code == _ENDED else state
        return places, states, opened


def _held(txn: lmdb.Transaction, store: LmdbStore, key: bytes) -> bool:
    return txn.get(key, db=store.txns) is not None


def _refusal(txid: str, code: int, state: object, held: bool) -> InvalidTransitionError:
    if code == _OPENED:
        return InvalidTransitionError(
            f"transaction {txid}: Opened refused: the log already holds that transaction; "
            "open each transaction once, with a new id"
        )
    why = "it is already ended" if state is None or held else "it was never opened"
    return InvalidTransitionError(
        f"transaction {txid}: {_NAMES[code]} refused: {why}; append records only between "
        "a transaction's Opened and its Ended"
    )
