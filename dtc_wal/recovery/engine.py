"""Drive unfinished transactions to their outcome, following the log and presumed abort.

Rules (docs/recovery.md):

* no decision on disk -> presumed abort: log DECIDED_ABORT, roll back every enlisted 2PC
  participant; for a saga, compensate in reverse order every step with a PREPARED record
  plus the first step without one (it may have run: its record is synced before the next
  step starts, so no later step can have run);
* DECIDED_COMMIT not completed -> re-send commit to every participant without an
  acknowledgement; DECIDED_ABORT not completed -> re-send rollback likewise;
* a participant is rebuilt by its registry factory, a saga step of two functions by
  importing them (:mod:`.rebuild`); one that cannot be rebuilt (no factory, unknown name,
  factory raised, import failed) or keeps failing stays pending: its transaction stays
  unfinished and is reported in doubt;
* a transaction whose records cannot be read back (found damaged at open,
  :mod:`dtc_wal.wal.unfinished`) is reported in doubt with the damage at every pass and
  never driven: its records are not trustworthy. Orphan resolution leaves its prepared
  branches alone too.

Recovery never invents an outcome: it reads the decision from the log, or presumes abort
when there is none.

A pass drives up to ``workers`` transactions at once when some are slow
(:mod:`.workers`), so one unreachable participant holds up only the transactions it is
in -- for up to ``phase2_timeout`` each -- not every transaction behind them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Sequence

from ..coordinator.driver import Driver
from ..coordinator.live import LiveTransaction
from ..history import ParticipantView, TransactionView
from ..registry import ParticipantRegistry
from ..states import Mode, Outcome, ParticipantState, TxState
from ..wal.unfinished import Damage
from .orphans import resolve_orphans
from .rebuild import plan_blocker, rebuild_members
from .report import InDoubt, RecoveryReport, TransactionAction, damage_action, damage_in_doubt
from .workers import check_workers, run_adaptive

__all__ = ["RecoveryEngine", "plan", "rebuild_members", "report_damaged"]

log = logging.getLogger("dtc_wal.recovery")

PRESUMED_ABORT = "presumed abort: no decision in the log when recovery found it"


class RecoveryEngine:
    """One recovery pass over the log's unfinished transactions."""

    def __init__(
        self,
        driver: Driver,
        registry: ParticipantRegistry,
        *,
        handover: Callable[[str], LiveTransaction | None] | None = None,
        workers: int = 1,
    ) -> None:
        self.driver = driver
        self.wal = driver.wal
        self.registry = registry
        self.workers = check_workers(workers, "workers")
        self._handover = handover or (lambda txid: None)

    def run(
        self,
        skip: Container[str] = (),
        only: Container[str] | None = None,
        include_resources: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> RecoveryReport:
        """Recover every unfinished transaction not in ``skip`` (and in ``only`` if given).

        Transactions are taken oldest first; while one is slow, others go on in helper
        threads (up to ``workers`` in all). ``progress(done, total)`` is called in this
        thread for every count. The report lists transactions in log order whatever order
        they finished in. When one raises (the log cannot be written), the others still
        run to the end; then the first such error, in log order, is raised. Transactions
        found damaged at open (not in ``skip``) are reported in doubt, not driven.
        """
        report = RecoveryReport()
        views = [
            v
            for v in self.wal.unfinished()
            if v.txid not in skip and (only is None or v.txid in only)
        ]
        for one in run_adaptive(views, self.recover_one, self.workers, progress):
            report.merge(one)
        report.merge(report_damaged(d for d in self.wal.damaged() if d.name not in skip))
        if include_resources:
            report.merge(self.resolve_orphans(skip))
        return report

    def recover_one(self, view: TransactionView, reason: str = PRESUMED_ABORT) -> RecoveryReport:
        report = RecoveryReport()
        tx = self._handover(view.txid)
        if tx is None:
            tx = LiveTransaction.from_view(
                view, rebuild_members(view, self.registry), self.driver.clock.monotonic()
            )
        else:
            # The log, not the caller's copy, says who is done: an operator may have
            # resolved a member since the hand-over. Re-sending to it would be refused by
            # the table, and with it the lazy batch holding the others' acknowledgements.
            for member in tx.members:
                logged = view.participants.get(member.name)
                if logged is not None and logged.state.done:
                    member.state = logged.state
        before = view.state
        if before is TxState.ACTIVE:
            self.driver.decide_abort(tx, reason)
            outcome = Outcome.ROLLBACK
            action = "presumed abort: roll back"
        else:
            outcome = Outcome.COMMIT if before is TxState.DECIDED_COMMIT else Outcome.ROLLBACK
            action = f"re-send {outcome.value}"
        pending = self.driver.deliver(tx, outcome)
        finished = not pending
        log.log(
            logging.INFO if finished else logging.WARNING,
            "txid=%s recovery (%s): %s",
            view.txid,
            action,
            "completed" if finished else f"in doubt: {', '.join(m.name for m in pending)}",
            extra={"txid": view.txid},
        )
        report.transactions.append(
            TransactionAction(
                txid=view.txid,
                mode=view.mode.value if view.mode else None,
                state_before=before.value,
                action=action,
                outcome=outcome.value,
                finished=finished,
                pending=tuple(m.name for m in pending),
            )
        )
        for m in pending:
            report.in_doubt.append(
                InDoubt(
                    txid=view.txid,
                    participant=m.name,
                    outcome=outcome.value,
                    state=m.state.value,
                    error=m.last_error or m.unavailable,
                    attempts=m.attempts,
                )
            )
        return report

    def resolve_orphans(self, skip: Container[str] = ()) -> RecoveryReport:
        """Ask every registered PreparedResource what it holds prepared and settle it."""
        return resolve_orphans(self.registry, self._decision_of, skip)

    def _decision_of(self, txid: str) -> str | None:
        view = self.wal.view(txid)  # LogCorruptError for a damaged one
        if view is not None and view.state is TxState.ACTIVE:
            return None  # recovered above on this pass, or live: not an orphan yet
        return "commit" if view is not None and view.outcome is Outcome.COMMIT else "rollback"


def report_damaged(damaged: Iterable[Damage]) -> RecoveryReport:
    """A report of damaged transactions: each in doubt with its damage, nothing done."""
    report = RecoveryReport()
    for damage in damaged:
        report.transactions.append(damage_action(damage))
        report.in_doubt.append(damage_in_doubt(damage))
    return report


def plan(
    views: list[TransactionView],
    registry: ParticipantRegistry,
    damaged: Sequence[Damage] = (),
) -> RecoveryReport:
    """What a recovery pass would do, without calling any participant or factory;
    ``damaged`` transactions would be left alone (in doubt)."""
    report = RecoveryReport(dry_run=True)
    for view in views:
        if view.state is TxState.ACTIVE:
            outcome, action = Outcome.ROLLBACK, "presumed abort: roll back"
        else:
            outcome = Outcome.COMMIT if view.state is TxState.DECIDED_COMMIT else Outcome.ROLLBACK
            action = f"re-send {outcome.value}"
        members = view.pending() if view.state.decided else view.ordered()
        blocked = []
        for p in _called(view, members, outcome):
            why = plan_blocker(p, view.mode, registry)
            if why is not None:
                blocked.append(p.name)
                report.in_doubt.append(
                    InDoubt(view.txid, p.name, outcome.value, p.state.value, why, p.attempts)
                )
        targets = ", ".join(p.name for p in members) or "nobody"
        report.transactions.append(
            TransactionAction(
                txid=view.txid,
                mode=view.mode.value if view.mode else None,
                state_before=view.state.value,
                action=f"{action}: {targets}",
                outcome=outcome.value,
                finished=not blocked,
                pending=tuple(blocked),
            )
        )
    report.merge(report_damaged(damaged))
    return report


def _called(
    view: TransactionView, members: list[ParticipantView], outcome: Outcome
) -> list[ParticipantView]:
    """The members the real pass would call, so the dry run blocks on exactly those: a saga
    commit is acknowledged without calls, and a saga rollback compensates only the steps
    that ran plus the first one that may have (the rest are skipped, never called)."""
    if view.mode is not Mode.SAGA:
        return members
    if outcome is Outcome.COMMIT:
        return []
    called, first_open = [], True
    for p in members:
        if p.state is ParticipantState.PREPARED:
            called.append(p)
        elif p.state is ParticipantState.ENLISTED and first_open:
            called.append(p)
            first_open = False
    return called
