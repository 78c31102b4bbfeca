"""Orphan prepared branches, whatever the log's format: every registered
``PreparedResource`` lists what it holds prepared, and each branch is committed when the
log holds a commit decision for it and rolled back otherwise (presumed abort).

The log is asked through ``decision_of(txid)``: ``"commit"`` or ``"rollback"``, None for a
transaction that is still undecided in the log (live, or recovered on this pass: not an
orphan yet), or it raises :class:`~dtc_wal.errors.LogCorruptError` for a damaged one, whose
branches are left alone and reported in doubt. The drivers' recovery pass
(:mod:`dtc_wal.drivers.recovery`) runs this loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container

from ..errors import LogCorruptError, TransactionDamagedError
from ..registry import ParticipantRegistry
from .report import InDoubt, RecoveryReport

__all__ = ["DecisionOf", "resolve_orphans"]

log = logging.getLogger("dtc_wal.recovery")

DecisionOf = Callable[[str], str | None]
"""txid -> ``"commit"``, ``"rollback"`` or None (undecided: leave it); raises
LogCorruptError for a damaged transaction."""


def resolve_orphans(
    registry: ParticipantRegistry, decision_of: DecisionOf, skip: Container[str] = ()
) -> RecoveryReport:
    """Ask every registered PreparedResource what it holds prepared and settle it."""
    report = RecoveryReport()
    for name, factory in registry.resources().items():
        try:
            resource = factory()
            prepared = list(resource.prepared_transactions())  # type: ignore[attr-defined]
        except Exception as exc:
            log.error("resource %s: cannot list prepared transactions: %s", name, exc)
            report.in_doubt.append(InDoubt("*", name, None, "unreachable", str(exc), 1))
            continue
        for txid in prepared:
            if txid in skip:
                continue
            try:
                action = decision_of(txid)
            except LogCorruptError as exc:  # damaged: never guess its outcome
                if not isinstance(exc, TransactionDamagedError):  # else logged at open
                    log.error(
                        "txid=%s resource %s: prepared branch left alone: %s",
                        txid,
                        name,
                        exc,
                        extra={"txid": txid},
                    )
                report.in_doubt.append(InDoubt(txid, name, None, "prepared", f"{exc}", 0))
                continue
            if action is None:
                continue  # recovered on this pass, or live: not an orphan yet
            commit = action == "commit"
            try:
                if commit:
                    resource.commit_prepared(txid)  # type: ignore[attr-defined]
                else:
                    resource.rollback_prepared(txid)  # type: ignore[attr-defined]
            except Exception as exc:
                log.error(
                    "txid=%s resource %s: %s of prepared branch failed: %s",
                    txid,
                    name,
                    action,
                    exc,
                    extra={"txid": txid},
                )
                report.in_doubt.append(InDoubt(txid, name, action, "prepared", f"{exc}", 1))
                continue
            log.info(
                "txid=%s resource %s: prepared branch %s (%s)",
                txid,
                name,
                "committed" if commit else "rolled back",
                "log says commit" if commit else "no commit decision in the log",
                extra={"txid": txid},
            )
            report.orphans.append((name, txid, action))
    return report
