"""Invariants shared by the stateful machine and the stress test.

Each function returns a list of problems (empty when all is well) so that a caller can
report every broken invariant at once, with the transaction ids in the message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dtc_wal import Mode, Outcome, ParticipantState, TransactionCoordinator, TransactionView
from dtc_wal.errors import DtcError
from dtc_wal.history import replay
from dtc_wal.wal.store import LogStore

from .world import World

try:  # written by another developer; use it once it exists
    from dtc_wal.wal.verify import verify_log  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the tree
    verify_log = None


def history_problems(coord: TransactionCoordinator, view: TransactionView) -> list[str]:
    """The transaction's records, in log order, form a valid path through the transition
    table, and fold into the same summary the coordinator reports."""
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


def world_problems(
    world: World,
    view: TransactionView | None,
    txid: str,
    members: Iterable[tuple[str, str]],
    acked_commit: bool,
) -> list[str]:
    """What the systems did agrees with the log and with what the caller was told.

    ``members`` are ``(member name, system name)`` pairs. Checks: no system both committed
    and rolled back across one transaction (atomicity); a commit acknowledged to the caller
    is never rolled back anywhere; a finished transaction's outcome is what every system
    applied.
    """
    problems = []
    effects = world.effects(txid)
    pairs = list(members)
    outcome = view.outcome if view is not None else None
    saga = view is not None and view.mode is Mode.SAGA
    if not saga and len(set(effects.values())) > 1:
        problems.append(f"{txid}: not atomic, systems applied {effects}")
    if acked_commit and "rollback" in effects.values():
        problems.append(f"{txid}: commit was acknowledged to the caller, then {effects}")
    if acked_commit and outcome is not Outcome.COMMIT:
        problems.append(f"{txid}: commit was acknowledged, the log says {view and view.state}")
    if outcome is Outcome.COMMIT and "rollback" in effects.values():
        problems.append(f"{txid}: the log says commit, yet systems applied {effects}")
    if outcome is Outcome.ROLLBACK and not saga and "commit" in effects.values():
        problems.append(f"{txid}: the log says abort, yet systems applied {effects}")
    if view is not None and view.state.finished:
        for name, system in pairs:
            part = view.participants.get(name)
            if part is None or part.state is ParticipantState.SKIPPED:
                continue
            applied = effects.get(system)
            if outcome is Outcome.COMMIT and applied != "commit":
                problems.append(f"{txid}: committed, but {system} applied {applied}")
            if outcome is Outcome.ROLLBACK and applied == "commit":
                problems.append(f"{txid}: aborted, but {system} kept its work")
    elif view is None and "commit" in effects.values():
        # Unknown means presumed abort: a null rollback may have reached a system.
        problems.append(f"{txid}: unknown to the log, yet systems applied {effects}")
    return problems


def closed_log_problems(path: str | Path) -> list[str]:
    """Integrity of a log no coordinator holds: ``verify_log`` when the tree has it, and
    always a replay of every transaction against its stored summary."""
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


def _is_clean(result: Any) -> bool:
    for attribute in ("clean", "ok"):
        value = getattr(result, attribute, None)
        if isinstance(value, bool):
            return value
    with contextlib.suppress(TypeError):
        return len(result) == 0
    return bool(result is None or result is True)
