"""A recovery pass on the driver: machines seeded from ``log.unfinished()``
(:meth:`~dtc_wal.protocol.Machine.recover`) run to the outcome their records imply.

Members come back by the rules of :mod:`dtc_wal.recovery.rebuild` (a registry factory,
or the import paths of a saga step's functions). One that cannot be rebuilt is never
called: the driver reports its calls as unavailable, so it stays pending and its
transaction in doubt with the reason. A damaged transaction, or one whose records do not
fold, is reported in doubt and never driven.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Container, Iterable

from ..protocol import Machine, OutOfOrderError, Recover, Transaction, fold
from ..protocol import Options as ProtocolOptions
from ..recovery.rebuild import rebuild_object
from ..registry import ParticipantRegistry
from ..states import Mode as MemberMode
from .members import LiveMember
from .run import Run
from .threaded import ThreadedDriver

__all__ = ["PassReport", "recover_pass", "seed"]

log = logging.getLogger("dtc_wal.drivers")


@dataclasses.dataclass(slots=True)
class PassReport:
    """What one pass did: ``finished`` txids (every member settled), and ``in_doubt``:
    txid -> the reasons it is still unfinished (a member's last error or why it cannot be
    rebuilt, or the damage)."""

    finished: list[str] = dataclasses.field(default_factory=list)
    in_doubt: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.in_doubt


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


def recover_pass(
    driver: ThreadedDriver,
    registry: ParticipantRegistry,
    options: ProtocolOptions,
    parked: Iterable[Run] = (),
    skip: Container[str] = (),
) -> PassReport:
    """Drive ``parked`` runs (finished earlier with members pending, objects still live)
    and then every unfinished transaction in the log not in ``skip`` or among them."""
    report = PassReport()
    seen: set[str] = set()
    for run in parked:
        seen.add(run.txid)
        _drive(driver, run, report)
    for stored in driver.log.unfinished():
        txid = stored.txid
        if txid in seen or txid in skip:
            continue
        if stored.damage is not None:
            report.in_doubt[txid] = [f"damaged: {stored.damage}"]
            continue
        try:
            tx = fold(stored.records)
            run = seed(tx, registry, options)
        except OutOfOrderError as exc:
            report.in_doubt[txid] = [f"its records do not fold: {exc}"]
            continue
        _drive(driver, run, report)
    log.info("recovery pass: %d finished, %d in doubt", len(report.finished), len(report.in_doubt))
    return report


def _drive(driver: ThreadedDriver, run: Run, report: PassReport) -> None:
    run.finish = None
    driver.drive(run, run.machine.handle(Recover(driver.clock.now())))
    finish = run.finish
    assert finish is not None
    if finish.pending:
        report.in_doubt[run.txid] = [
            f"{run.members[i].name}: {error or 'not acknowledged'}"
            for i, error in zip(finish.pending, finish.errors, strict=True)
        ]
    else:
        report.finished.append(run.txid)
