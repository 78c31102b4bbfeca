"""Invariants shared by the stateful machine and the stress test.

Each function returns a list of problems (empty when all is well) so that a caller can
report every broken invariant at once, with the transaction ids in the message. The log is
read through the :class:`~dtc_wal.log.TransactionLog` interface (``coord.log``, or an
``LmdbLog`` opened read-only when no coordinator holds it), the protocol's ``fold`` and
``dtc_wal.maintenance.verify``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dtc_wal import TransactionCoordinator
from dtc_wal.coordinator.views import view_of
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.maintenance.verify import verify_log
from dtc_wal.protocol import OutOfOrderError, fold
from dtc_wal.protocol.records import Opened

from .model import Words, ended, settled
from .world import World


def history_problems(coord: TransactionCoordinator, view: Any) -> list[str]:
    """The transaction's records, in log order, form a valid path through the transition
    table, and fold into the same transaction the coordinator reports."""
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
    """The data of each ``Opened`` of ``txid`` (the commit data lives there)."""
    coord.flush()
    stored = coord.log.read(txid)
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

    ``members`` are ``(member name, system name)`` pairs; ``words`` the enums the
    coordinator reports in. Checks: no system both committed and rolled back across
    one transaction (atomicity); a commit acknowledged to the caller is never rolled back
    anywhere; a finished transaction's outcome is what every system applied.
    """
    problems = []
    effects = world.effects(txid)
    pairs = list(members)
    outcome = view.outcome if view is not None else None
    saga = view is not None and view.mode is words.mode.SAGA
    if view is not None and outcome not in (None, words.commit, words.abort):
        problems.append(f"{txid}: outcome {outcome!r} is neither commit nor abort")
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
    """Integrity of a log no coordinator holds: ``dtc verify`` (framing, the protocol's
    fold, the unfinished index), and, through the log interface: every transaction folds,
    an ended one has every member settled (a crash may leave all settled before ``Ended``),
    and the unfinished listing is exactly the transactions whose fold has not ended."""
    report = verify_log(path)
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
