"""What the crash harness checks after a kill and a recovery.

* :func:`read_log` (:mod:`.log_reading`) -- every transaction in the (format-2) log, folded
  by the protocol, and the log's integrity as ``dtc verify`` sees it: records decode (CRC,
  format), transitions are allowed, the indexes agree with the records.
* :func:`check_invariants` -- the promises, comparing the log with the participants' own
  durable state (:mod:`.durable`) and the caller's acknowledgements:

  1. every transaction is finished (nothing in doubt while participants are reachable);
  2. a committed transaction is committed at every participant, an aborted one at none
     and left prepared at none;
  3. every commit acknowledged to the caller is committed (and every abort reported to the
     caller is aborted: the outcome never changes);
  4. no participant saw a call the protocol forbids (commit before prepare, rollback after
     commit, ...), and none holds state for a transaction the log does not know, except a
     null rollback -- and two outcomes the protocol lets the log miss:

     * an orphan (``lists_prepared``: the opening records were not forced before prepare,
       and the coordinator died before the decision): every participant that holds
       anything for it was prepared and then rolled back by the PreparedResource
       (``rolled-back-prepared``), or saw a null rollback. It counts as rolled back;
       nothing may stay prepared.
     * a one-phase commit whose lazily appended history was lost with the coordinator:
       its lone participant holds ``committed-one-phase`` -- its own commit was the
       decision. It counts as committed, also for invariant 3;
  5. the log's integrity check is clean.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..protocol import TxState
from .durable import (
    COMMITTED_ONE_PHASE,
    COMMITTED_STATES,
    NULL_COMPENSATION,
    NULL_ROLLBACK,
    PREPARED,
    ROLLED_BACK_PREPARED,
    read_states,
)
from .log_reading import Logged, LogSnapshot, read_log

__all__ = [
    "Acks",
    "CheckResult",
    "LogSnapshot",
    "Logged",
    "check_invariants",
    "read_acks",
    "read_log",
]


@dataclasses.dataclass(slots=True)
class Acks:
    """What the workload told its callers: ``commit``, ``abort``, ``commit-incomplete``
    (decided commit, not yet acknowledged by everyone) and ``decided`` (a commit handle was
    returned: the decision is durable, phase two may not have run) txids."""

    committed: set[str] = dataclasses.field(default_factory=set)
    aborted: set[str] = dataclasses.field(default_factory=set)
    incomplete: set[str] = dataclasses.field(default_factory=set)
    decided: set[str] = dataclasses.field(default_factory=set)


def read_acks(path: str | os.PathLike[str]) -> Acks:
    """Parse an acknowledgement file (``<kind> <txid>`` lines); a torn last line is ignored."""
    acks = Acks()
    file = Path(path)
    if not file.exists():
        return acks
    text = file.read_text()
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # cut by the kill mid-line: never acknowledged
    kinds = {
        "commit": acks.committed,
        "abort": acks.aborted,
        "commit-incomplete": acks.incomplete,
        "decided": acks.decided,
    }
    for line in filter(None, lines):
        kind, _, txid = line.partition(" ")
        kinds[kind].add(txid)
    return acks


@dataclasses.dataclass(slots=True)
class CheckResult:
    violations: list[str] = dataclasses.field(default_factory=list)
    transactions: int = 0
    committed: int = 0
    aborted: int = 0
    acknowledged: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        head = (
            f"{self.transactions} transaction(s) ({self.committed} committed, {self.aborted} "
            f"aborted), {self.acknowledged} acknowledged commit(s)"
        )
        if self.ok:
            return f"{head}: all invariants hold"
        listed = "\n  ".join(self.violations[:50])
        more = f"\n  ... and {len(self.violations) - 50} more" if len(self.violations) > 50 else ""
        return f"{head}: {len(self.violations)} violation(s):\n  {listed}{more}"


def check_invariants(
    log_path: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
    acks_path: str | os.PathLike[str] | None = None,
) -> CheckResult:
    """Check the invariants above over a log whose coordinator is closed (or dead)."""
    result = CheckResult()
    snap = read_log(log_path)
    held = read_states(state_dir)
    acks = read_acks(acks_path) if acks_path is not None else Acks()
    bad = result.violations
    bad.extend(f"log integrity: {p}" for p in snap.problems)
    bad.extend(f"protocol violation seen by participant {a}" for a in held.anomalies)

    for txid, view in snap.transactions.items():
        result.transactions += 1
        at = held.states.get(txid, {})
        if not view.state.finished:
            pending = ", ".join(view.pending or view.participants)
            bad.append(f"{txid} is still {view.state.value} after recovery (pending: {pending})")
            continue
        if view.state is TxState.COMMITTED:
            result.committed += 1
            for name in view.participants:
                if at.get(name) not in COMMITTED_STATES:
                    bad.append(
                        f"{txid} is committed in the log but {name} holds "
                        f"{at.get(name) or 'nothing'}"
                    )
        else:
            result.aborted += 1
            for name in view.participants:
                if at.get(name) in COMMITTED_STATES or at.get(name) == PREPARED:
                    bad.append(f"{txid} is aborted in the log but {name} holds {at[name]}")
    outside_the_log: dict[str, TxState] = {}
    for txid, at in held.states.items():
        if txid in snap.transactions:
            continue
        outcome = _outside_the_log(txid, at, bad)
        if outcome is not None:
            outside_the_log[txid] = outcome
            result.transactions += 1
            if outcome is TxState.COMMITTED:
                result.committed += 1
            else:
                result.aborted += 1

    result.acknowledged = len(acks.committed)
    told = [
        (txid, TxState.COMMITTED)
        for txid in sorted(acks.committed | acks.incomplete | acks.decided)
    ]
    told += [(txid, TxState.ABORTED) for txid in sorted(acks.aborted)]
    for txid, expected in told:
        found = snap.transactions.get(txid)
        if found is not None:
            state = found.state
        elif txid in outside_the_log:
            state = outside_the_log[txid]
        else:
            bad.append(
                f"{txid} was reported {expected.value} to its caller, but it is missing "
                "from the log"
            )
            continue
        if state is not expected:
            bad.append(
                f"{txid} was reported {expected.value} to its caller, but it is {state.value}"
            )
    return result


def _outside_the_log(txid: str, at: dict[str, str], bad: list[str]) -> TxState | None:
    """The outcome of a transaction the log does not know, from what its participants hold
    (None: nothing of it happened anywhere -- only null rollbacks/compensations)."""
    if COMMITTED_ONE_PHASE in at.values():
        # a one-phase commit whose lazy history did not reach the log: its lone
        # participant's own commit was the decision
        if len(at) == 1:
            return TxState.COMMITTED
        holders = ", ".join(f"{name}={state}" for name, state in sorted(at.items()))
        bad.append(
            f"{txid}, which the log does not know, was committed in one phase with "
            f"other participants holding state ({holders})"
        )
        return None
    orphan = False
    for name, state in sorted(at.items()):
        if state == ROLLED_BACK_PREPARED:
            orphan = True  # prepared, then rolled back by its PreparedResource
        elif state not in (NULL_ROLLBACK, NULL_COMPENSATION):
            bad.append(f"{name} holds {state} for {txid}, which the log does not know")
    return TxState.ABORTED if orphan else None
