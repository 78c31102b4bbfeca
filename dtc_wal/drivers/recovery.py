"""A recovery pass on the driver: machines seeded from the log's unfinished transactions
(:meth:`~dtc_wal.protocol.Machine.recover`) run to the outcome their records imply, and
its report (:class:`~dtc_wal.recovery.report.RecoveryReport`).

Members come back by the rules of :mod:`dtc_wal.recovery.rebuild` (a registry factory,
or the import paths of a saga step's functions). One that cannot be rebuilt is never
called: the driver reports its calls as unavailable, so it stays pending and its
transaction in doubt with the reason. A damaged transaction, or one whose records do not
fold, is reported in doubt (``damaged=True``) and never driven; the others still are.
Orphan prepared branches are settled by :mod:`dtc_wal.recovery.orphans`.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable, Container, Sequence

from ..errors import TransactionDamagedError
from ..log import StoredTransaction, TransactionLog
from ..protocol import InvalidEventError, Machine, OutOfOrderError, Recover, Transaction, fold
from ..protocol import Options as ProtocolOptions
from ..recovery.orphans import resolve_orphans
from ..recovery.rebuild import plan_blocker_of, rebuild_object
from ..recovery.report import InDoubt, RecoveryReport, TransactionAction
from ..registry import ParticipantRegistry
from ..states import Mode as MemberMode
from . import report as words
from .members import LiveMember
from .run import Run
from .threaded import ThreadedDriver

__all__ = ["decision_of", "plan_pass", "recover_pass", "seed", "transaction_of"]

log = logging.getLogger("dtc_wal.drivers")

Progress = Callable[[int, int], None]
_Entry = tuple[TransactionAction, list[InDoubt]]
_Recovering = cf.Future[tuple[TransactionAction, Sequence[InDoubt]] | None]


def seed(tx: Transaction, registry: ParticipantRegistry, options: ProtocolOptions) -> Run:
    """A run for a transaction read from the log, its unsettled members rebuilt."""
    machine = Machine.recover(tx, options)
    mode = MemberMode(tx.mode.value)
    members: list[LiveMember] = []
    for m in tx.members:
        if m.state.settled:
            members.append(LiveMember(m.name, None, unavailable="settled"))
            continue
        obj, why = rebuild_object(m.name, m.factory, m.params, mode, registry)
        if obj is None:
            members.append(LiveMember(m.name, None, unavailable=why))
        else:
            members.append(LiveMember.of(m.name, obj, tx.mode))
    run = Run(machine, members)
    run.data = dict(tx.data or {})
    return run


def transaction_of(stored: StoredTransaction, log: object = None) -> Transaction:
    """Fold what the log holds; TransactionDamagedError when it cannot be read or folded
    (naming ``log``'s path in the commands it suggests, when it has one)."""
    where = str(getattr(log, "path", None) or "LOG")
    if stored.damage is not None:
        raise TransactionDamagedError(
            stored.txid, None, str(stored.damage), where
        ) from stored.damage
    try:
        return fold(stored.records)
    except OutOfOrderError as exc:
        raise TransactionDamagedError(
            stored.txid, None, f"its records do not fold: {exc}", where
        ) from exc


def decision_of(log: TransactionLog) -> Callable[[str], str | None]:
    """What :func:`~dtc_wal.recovery.orphans.resolve_orphans` asks of a format-2 log."""

    def decision(txid: str) -> str | None:
        stored = log.read(txid)
        if stored is None:
            return "rollback"  # presumed abort: the log never heard of it
        tx = transaction_of(stored)
        if tx.outcome is None:
            return None
        return words.word(tx.outcome)

    return decision


def recover_pass(
    driver: ThreadedDriver,
    registry: ParticipantRegistry,
    options: ProtocolOptions,
    parked: Sequence[Run],
    stored: Sequence[StoredTransaction],
    progress: Progress | None = None,
    skip_orphans: Container[str] = (),
    workers: int = 1,
    damage_logged: set[str] | None = None,
) -> RecoveryReport:
    """Drive the ``parked`` runs (finished earlier with members pending, objects still
    live), then every transaction of ``stored`` (unfinished in the log, none live); then
    settle orphan prepared branches not in ``skip_orphans``. ``progress(done, total)``
    after each transaction. ``workers`` > 1 drives that many stored transactions at once
    (one hanging participant does not hold up the rest); the report keeps log order.
    A damaged transaction is logged at ERROR once per txid added to ``damage_logged`` (the
    engine keeps one set per open: later passes report it in doubt and log it at DEBUG)."""
    report = RecoveryReport()
    logged = damage_logged if damage_logged is not None else set()
    total, done = len(parked) + len(stored), 0
    again: list[StoredTransaction] = []
    for run in parked:
        if not _add(report, _drive(driver, run)):
            stored_now = driver.log.read(run.txid)  # its machine cannot go on: seed anew
            if stored_now is not None and not stored_now.finished:
                again.append(stored_now)
                total += 1
        done += 1
        if progress is not None:
            progress(done, total)
    todo = [*stored, *again]
    if workers <= 1 or len(todo) <= 1:
        for one in todo:
            _add(report, _recover_stored(driver, registry, options, one, logged))
            done += 1
            if progress is not None:
                progress(done, total)
    else:
        entries = _in_parallel(
            driver, registry, options, todo, workers, progress, done, total, logged
        )
        for entry in entries:
            _add(report, entry)
    driver.log.flush()  # what the pass appended, before the resources are asked
    report.merge(resolve_orphans(registry, decision_of(driver.log), skip_orphans))
    log.info("recovery pass: %s", report.summary())
    return report


def _in_parallel(
    driver: ThreadedDriver,
    registry: ParticipantRegistry,
    options: ProtocolOptions,
    todo: Sequence[StoredTransaction],
    workers: int,
    progress: Progress | None,
    done: int,
    total: int,
    logged: set[str],
) -> list[tuple[TransactionAction, Sequence[InDoubt]] | None]:
    """``_recover_stored`` of each on ``workers`` threads; every one runs even when some
    raise (a log error), and the first such error is raised after all have ended.

    The pool is fed one transaction per free worker, never ahead: an interrupt of the caller
    (Ctrl-C) lets the transactions in flight end, starts no more (the next pass takes
    them) and is raised."""
    pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="dtc-recovery")
    futures: list[_Recovering] = []
    try:
        running: set[_Recovering] = set()
        while len(futures) < len(todo) or running:
            while len(futures) < len(todo) and len(running) < workers:
                one = todo[len(futures)]
                futures.append(pool.submit(_recover_stored, driver, registry, options, one, logged))
                running.add(futures[-1])
            finished, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for _ in finished:
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    entries = []
    for future in futures:
        entries.append(future.result())  # raises the first failure, after every one ran
    return entries


def _add(report: RecoveryReport, entry: tuple[TransactionAction, Sequence[InDoubt]] | None) -> bool:
    if entry is None:
        return False
    action, doubts = entry
    report.transactions.append(action)
    report.in_doubt.extend(doubts)
    return True


def _recover_stored(
    driver: ThreadedDriver,
    registry: ParticipantRegistry,
    options: ProtocolOptions,
    stored: StoredTransaction,
    logged: set[str],
) -> tuple[TransactionAction, Sequence[InDoubt]] | None:
    txid = stored.txid
    if stored.damage is not None:
        action, doubt = words.damaged(txid, stored.damage, stored.records)
        _log_damage(txid, stored.damage, logged)
        return action, [doubt]
    try:
        tx = fold(stored.records)
    except OutOfOrderError as exc:
        action, doubt = words.not_folding(txid, exc, stored.records)
        _log_damage(txid, f"its records do not fold: {exc}", logged)
        return action, [doubt]
    if tx.ended:
        return None  # it ended since the log was read
    return _drive(driver, seed(tx, registry, options))


def _log_damage(txid: str, damage: object, logged: set[str]) -> None:
    """At ERROR the first time (docs/recovery.md: "logs the damaged one at ERROR once"),
    then at DEBUG: every pass reports it in doubt anyway."""
    level = logging.DEBUG if txid in logged else logging.ERROR
    logged.add(txid)
    log.log(level, "txid=%s recovery: left alone: %s", txid, damage, extra={"txid": txid})


def _drive(driver: ThreadedDriver, run: Run) -> _Entry | None:
    """Deliver the run's outcome; None when its machine cannot (an append of its failed)."""
    run.finish = None
    before = run.machine.transaction
    if before is None:
        return None
    before = before.copy()
    try:
        commands = run.machine.handle(Recover(driver.clock.now()))
    except InvalidEventError:
        return None
    driver.drive(run, commands)
    finish = run.finish
    assert finish is not None
    names = [m.name for m in run.members]
    entry = words.driven(before, run.machine.transaction, finish, names)
    txid = run.txid
    if finish.pending:
        log.warning(
            "txid=%s recovery (%s): in doubt: %s",
            txid,
            entry[0].action,
            ", ".join(entry[0].pending),
            extra={"txid": txid},
        )
    else:
        log.info("txid=%s recovery (%s): completed", txid, entry[0].action, extra={"txid": txid})
    return entry


def plan_pass(
    registry: ParticipantRegistry, parked: Sequence[Run], stored: Sequence[StoredTransaction]
) -> RecoveryReport:
    """What :func:`recover_pass` would do, without appending, calling any participant or
    any factory (a dry run)."""
    report = RecoveryReport(dry_run=True)
    for run in parked:
        tx = run.machine.transaction
        if tx is not None:
            _add(report, words.planned(tx, _live_blocker(run)))
    for one in stored:
        if one.damage is not None:
            action, doubt = words.damaged(one.txid, one.damage, one.records)
            _add(report, (action, [doubt]))
            continue
        try:
            tx = fold(one.records)
        except OutOfOrderError as exc:
            action, doubt = words.not_folding(one.txid, exc, one.records)
            _add(report, (action, [doubt]))
            continue
        _add(report, words.planned(tx, _rebuild_blocker(tx, registry)))
    return report


def _live_blocker(run: Run) -> Callable[[int], str | None]:
    members = run.members
    return lambda i: members[i].unavailable


def _rebuild_blocker(tx: Transaction, registry: ParticipantRegistry) -> Callable[[int], str | None]:
    """Why recovery could not rebuild a member, without calling a factory or importing."""
    mode = MemberMode(tx.mode.value)
    members = tx.members

    def blocker(i: int) -> str | None:
        m = members[i]
        return plan_blocker_of(m.name, m.factory, m.params, mode, registry)

    return blocker
