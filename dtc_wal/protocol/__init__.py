"""The protocol core: pure state machines for 2PC, sagas and one-phase commit, and the
format-2 record vocabulary (docs/architecture.md).

Events in, commands out: no I/O, no clock, no threads, no randomness, and no import of a
log or a driver. Not wired into the coordinator yet.

>>> from dtc_wal.protocol import (Machine, MemberSpec, Mode, Op, Commit, Durable, Voted,
...                               Acknowledged)
>>> m = Machine("tx-1", now=0.0)
>>> m.enlist(MemberSpec("a"), Mode.TWO_PHASE)
0
>>> [type(c).__name__ for c in m.handle(Commit(1.0, {"k": 1}))]
['Append']
>>> [type(c).__name__ for c in m.handle(Durable(1.1, 1))]
['Call']
>>> [type(c).__name__ for c in m.handle(Voted(1.2, 0))]
['Append']
>>> [type(c).__name__ for c in m.handle(Durable(1.3, 2))]
['Decision', 'Call']
>>> [type(c).__name__ for c in m.handle(Acknowledged(1.4, 0, Op.COMMIT))]
['Append', 'Finish']
>>> m.transaction.state
<TxState.COMMITTED: 'committed'>
"""

from .commands import Append, Call, Command, Decision, Finish
from .delivery import PRESUMED_ABORT
from .errors import (
    DuplicateMemberError,
    InvalidEventError,
    InvalidMemberError,
    InvalidOptionError,
    MixedModeError,
    OutOfOrderError,
    ProtocolError,
)
from .events import (
    Acknowledged,
    AppendFailed,
    CallFailed,
    Commit,
    Durable,
    Event,
    Recover,
    Resolve,
    Rollback,
    Voted,
)
from .machine import Machine
from .options import Options
from .records import (
    Acked,
    Decided,
    Ended,
    Failed,
    MemberSpec,
    Opened,
    Record,
    Resolved,
    StepDone,
)
from .transaction import Member, Transaction, fold
from .vocabulary import FailureKind, MemberState, Mode, Op, Outcome, Retry, TxState, Vote

__all__ = [
    "PRESUMED_ABORT",
    "Acked",
    "Acknowledged",
    "Append",
    "AppendFailed",
    "Call",
    "CallFailed",
    "Command",
    "Commit",
    "Decided",
    "Decision",
    "DuplicateMemberError",
    "Durable",
    "Ended",
    "Event",
    "Failed",
    "FailureKind",
    "Finish",
    "InvalidEventError",
    "InvalidMemberError",
    "InvalidOptionError",
    "Machine",
    "Member",
    "MemberSpec",
    "MemberState",
    "MixedModeError",
    "Mode",
    "Op",
    "Opened",
    "Options",
    "OutOfOrderError",
    "Outcome",
    "ProtocolError",
    "Record",
    "Recover",
    "Resolve",
    "Resolved",
    "Retry",
    "Rollback",
    "StepDone",
    "Transaction",
    "TxState",
    "Vote",
    "Voted",
    "fold",
]
