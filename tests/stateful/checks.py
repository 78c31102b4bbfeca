"""Invariants shared by the stateful machine and the stress test, on both log formats.

Each function returns a list of problems (empty when all is well) so that a caller can
report every broken invariant at once, with the transaction ids in the message. How a log
is read is per format: format 1 through its ``LogStore`` and ``history.replay``, format 2
through the :class:`~dtc_wal.log.TransactionLog` interface (``LmdbLog``, read-only when no
coordinator holds it), the protocol's ``fold`` and ``dtc_wal.maintenance.verify``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dtc_wal.history import replay
from dtc_wal.wal.store import LogStore

from dtc_wal import TransactionCoordinator
from dtc_wal.coordinator.views import view_of
from dtc_wal.errors import DtcError
from dtc_wal.log.lmdb import LmdbLog, log_format
from dtc_wal.maintenance.verify import verify_log as verify_format_2
from dtc_wal.protocol import OutOfOrderError, fold
from dtc_wal.protocol.records import Opened

from .model import Words, ended, settled
from .world import World

try:  # written by another developer; use it once it exists
    from dtc_wal.wal.verify import verify_log
except ImportError:  # pragma: no cover - depends on the tree
    verify_log = None


def format_of(coord: TransactionCoordinator) -> int:
    """The format of the log ``coord`` runs on (format 2: the facade has ``log``)."""
    return 2 if isinstance(getattr(coord, "log", None), LmdbLog) else 1


def history_problems(coord: TransactionCoordinator, view: Any) -> list[str]:
    """The transaction's records, in log order, form a valid path through the transition
    table, and fold into the same transaction the coordinator reports."""
    if format_of(coord) == 2:
        return _history_problems_2(coord, view)
    records = coord.wal.store.records_of(view.txid)
    if not records:
        return [] if not view.lsns else [f"{view.txid}: log has no records, view has LSNs"]
    try:
        replayed = replay(records)
    except DtcError as exc:
        return [f"{view.txid}: records break the transition table: {exc}"]
    if replayed.summary() != view.summary():
        return [f"{view.txid}: replay gives {replayed.summary()}, coordinator {view.summary()}"]
    return []


def _history_problems_2(coord: Any, view: Any) -> list[str]:
    coord.flush()
    stored = coord.log.read(view.txid)
    live = view.txid in coord.live_txids
    if stored is None:
        # Nothing is logged before commit or rollback: only a live transaction has none.
        return [] if live else [f"{view.txid}: the log has no records, nobody holds it"]
    if stored.damage is not None:
        return [f"{view.txid}: records do not read back: {stored.damage}"]
    try:
        folded = view_of(fold(stored.records))
    except OutOfOrderError as exc:
        return [f"{view.txid}: records break the transition table: {exc}"]
    if not live and folded != view:
        return [f"{view.txid}: the fold gives {folded}, coordinator {view}"]
    return []


def opened_data(coord: TransactionCoordinator, txid: str) -> list[Any]:
    """Format 2: the data of each ``Opened`` of ``txid`` (the commit data lives there)."""
    coord.flush()
    stored = coord.log.read(txid)  # type: ignore[attr-defined]
    records = stored.records if stored is not None else ()
    return [r.data for r in records if isinstance(r, Opened)]


def world_problems(
    world: World,
    view: Any,
    txid: str,
    members: Iterable[tuple[str, str]],
    acked_commit: bool,
    words: Words,
) -> list[str]:
    """What the systems did agrees with the log and with what the caller was told.

    ``members`` are ``(member name, system name)`` pairs; ``words`` the enums of the log
    format the coordinator runs on. Checks: no system both committed and rolled back across
    one transaction (atomicity); a commit acknowledged to the caller is never rolled back
    anywhere; a finished transaction's outcome is what every system applied.
    """
    problems = []
    effects = world.effects(txid)
    pairs = list(members)
    outcome = view.outcome if view is not None else None
    saga = view is not None and view.mode is words.mode.SAGA
    if view is not None and outcome not in (None, words.commit, words.abort):
        problems.append(f"{txid}: outcome {outcome!r} is not one of format {words.log_format}")
    if not saga and len(set(effects.values())) > 1:
        problems.append(f"{txid}: not atomic, systems applied {effects}")
    if acked_commit and "rollback" in effects.values():
        problems.append(f"{txid}: commit was acknowledged to the caller, then {effects}")
    if acked_commit and outcome is not words.commit:
        problems.append(f"{txid}: commit was acknowledged, the log says {view and view.state}")
    if outcome is words.commit and "rollback" in effects.values():
        problems.append(f"{txid}: the log says commit, yet systems applied {effects}")
    if outcome is words.abort and not saga and "commit" in effects.values():
        problems.append(f"{txid}: the log says abort, yet systems applied {effects}")
    if view is not None and ended(view.state):
        for name, system in pairs:
            part = view.participants.get(name)
            if part is None or part.state is words.member.SKIPPED:
                continue
            applied = effects.get(system)
            if outcome is words.commit and applied != "commit":
                problems.append(f"{txid}: committed, but {system} applied {applied}")
            if outcome is words.abort and applied == "commit":
                problems.append(f"{txid}: aborted, but {system} kept its work")
    elif view is None and "commit" in effects.values():
        # Unknown means presumed abort: a null rollback may have reached a system.
        problems.append(f"{txid}: unknown to the log, yet systems applied {effects}")
    return problems


def closed_log_problems(path: str | Path) -> list[str]:
    """Integrity of a log no coordinator holds, in either format."""
    if log_format(path) == 2:
        return _closed_log_problems_2(path)
    problems: list[str] = []
    if verify_log is not None:
        result: Any = verify_log(path)
        clean = _is_clean(result)
        if not clean:
            problems.append(f"verify_log({path}) reports damage: {result!r}")
    store = LogStore(path, readonly=True)
    try:
        for txid, _raw in store.iter_summaries():
            try:
                view = replay(store.records_of(txid))
            except DtcError as exc:
                problems.append(f"{txid}: {exc}")
                continue
            if view.summary() != store.summary(txid):
                problems.append(f"{txid}: stored summary differs from the replayed records")
            unfinished = txid in set(store.unfinished_txids())
            if unfinished == view.state.finished:
                problems.append(f"{txid}: unfinished index disagrees with state {view.state}")
    finally:
        store.close()
    return problems


def _closed_log_problems_2(path: str | Path) -> list[str]:
    """``dtc verify`` (framing, the protocol's fold, the unfinished index), and, through the
    log interface: every transaction folds, an ended one has every member settled (a crash
    may leave all settled before ``Ended``), and the unfinished listing is exactly the
    transactions whose fold has not ended."""
    report = verify_format_2(path)
    problems = [f"verify_log({path}): {p}" for p in report.problems]
    log = LmdbLog(path, readonly=True)
    try:
        unfinished = {s.txid for s in log.unfinished()}
        for stored in log.transactions():
            if stored.damage is not None:
                problems.append(f"{stored.txid}: {stored.damage}")
                continue
            try:
                tx = fold(stored.records)
            except OutOfOrderError as exc:
                problems.append(f"{stored.txid}: {exc}")
                continue
            if tx.ended and not all(settled(m.state) for m in tx.members):
                problems.append(f"{stored.txid}: ended={tx.ended} with members {tx.members}")
            if (stored.txid in unfinished) == tx.ended:
                problems.append(f"{stored.txid}: unfinished listing disagrees with {tx.state}")
    finally:
        log.close()
    return problems


def _is_clean(result: Any) -> bool:
    for attribute in ("clean", "ok"):
        value = getattr(result, attribute, None)
        if isinstance(value, bool):
            return value
    with contextlib.suppress(TypeError):
        return len(result) == 0
    return bool(result is None or result is True)
