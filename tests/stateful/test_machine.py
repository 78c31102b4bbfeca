"""The coordinator against a model, crashes included (issue 5; docs/testing.md).

A :class:`CoordinatorMachine` drives a real :class:`TransactionCoordinator` (the facade over
the Engine) on a real LMDB log in a temporary directory. Beside it, :class:`~.model.Model`
predicts every result and what the log must say; :class:`~.world.World` holds the external
systems, which survive a coordinator crash. After every step the invariants compare the
three.
"""

from __future__ import annotations

import concurrent.futures as cf
import shutil
import tempfile
import uuid
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from dtc_wal import (
    CommitIncompleteError,
    ManualClock,
    TransactionAborted,
    TransactionCoordinator,
)
from dtc_wal.errors import (
    DuplicateParticipantError,
    InvalidParticipantError,
    MixedTransactionError,
    TransactionFinishedError,
    TransactionStateError,
    UnencodableDataError,
    UnknownFactoryError,
    UnknownTransactionError,
)

from .checks import closed_log_problems, history_problems, opened_data, world_problems
from .conftest import stateful_settings
from .model import MAX_RETRIES, Model, TxModel, ended
from .world import (
    TWO_PHASE_FACTORY,
    Behaviour,
    System,
    TwoPhaseProxy,
    World,
    step_factory,
)

ZOMBIE_TIMEOUT = 60.0
MAX_OPEN = 4
BAD_INPUT_EVERY = 3

OK = Behaviour("ok")
behaviours = st.one_of(
    st.just(OK),
    st.sampled_from([Behaviour("vote-no"), Behaviour("hang")]),
    st.builds(Behaviour, st.just("transient"), st.integers(1, MAX_RETRIES + 2)),
    # Up to three delivery passes before the system acknowledges.
    st.builds(Behaviour, st.just("phase2-fail"), st.integers(1, 3 * (MAX_RETRIES + 1))),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.binary(max_size=4),
)
# Small on purpose: hypothesis stops an example early once it has drawn a lot of data.
commit_data = st.dictionaries(st.text(max_size=3), scalars, max_size=2)
batch_data = st.one_of(st.just({}), st.fixed_dictionaries({"n": st.integers(0, 9)}))
unencodable_values = st.one_of(
    st.sets(st.integers(), max_size=2),
    st.builds(object),
    st.integers(min_value=2**64),
    st.integers(max_value=-(2**63) - 1),
    st.complex_numbers(allow_nan=False),
)
unencodable_data = st.builds(lambda k, v: {k: v}, st.text(max_size=4), unencodable_values)
not_txids = st.one_of(st.none(), st.integers(), st.binary(max_size=4), st.builds(object))

BAD_INPUTS = (
    "unknown-txid",
    "not-a-txid",
    "unencodable-data",
    "unencodable-params",
    "duplicate-name",
    "mixed",
    "unknown-factory",
    "not-a-participant",
    "half-saga",
    "contradicting-resolve",
)


def _never(*_args: object) -> None:
    raise AssertionError("a refused participant must never be called")


class CoordinatorMachine(RuleBasedStateMachine):
    """The coordinator on its (format-2) log, its states in the protocol's enums."""

    systems = Bundle("systems")

    def __init__(self) -> None:
        super().__init__()
        self.path = tempfile.mkdtemp(prefix="dtc-stateful-")
        self.world = World()
        self.model = Model(self.world)
        self.w = self.model.w
        self.clock = ManualClock()
        self.registry = self.world.registry()
        self.coord: TransactionCoordinator | None = self._open()
        self.settled: set[str] = set()  # finished and checked since the last restart
        self.begun_since_crash = 0
        self.steps = 0
        self.last_bad_input = -BAD_INPUT_EVERY

    def _open(self) -> TransactionCoordinator:
        return TransactionCoordinator(
            self.path,
            registry=self.registry,
            clock=self.clock,
            recovery_interval=None,
            zombie_timeout=ZOMBIE_TIMEOUT,
            max_retries=MAX_RETRIES,
            # Real seconds: no call is slow here, these only stop a bug from hanging CI.
            prepare_timeout=30.0,
            phase2_timeout=30.0,
        )

    @property
    def c(self) -> TransactionCoordinator:
        assert self.coord is not None
        return self.coord

    def teardown(self) -> None:
        try:
            if self.coord is not None:
                self.coord.close()
                self.coord = None
                problems = closed_log_problems(self.path)
                assert not problems, "\n".join(problems)
        finally:
            shutil.rmtree(self.path, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------

    def _pick_open(self, data: st.DataObject) -> TxModel:
        txid = data.draw(st.sampled_from(self.model.open_txids()), label="open txid")
        return self.model.txs[txid]

    def _view(self, txid: str) -> Any:
        try:
            return self.c.transaction(txid)
        except UnknownTransactionError:
            return None

    def _join(
        self, tx: TxModel, system: str, saga: bool, recoverable: bool, explicit: bool
    ) -> None:
        """Add ``system`` to ``tx`` the way a caller would, and to the model."""
        target = self.world.systems[system]
        if saga:
            if recoverable:
                name = step_factory(system)
                call = lambda: self.c.register_participant(tx.txid, name, params={"k": 1})  # noqa: E731
            else:
                name = f"fn:{system}"
                call = lambda: self.c.register_participant(  # noqa: E731
                    tx.txid, name, target.action, target.compensate
                )
        elif recoverable:
            name = system if explicit else _auto_name(tx, TWO_PHASE_FACTORY)
            call = lambda: self.c.enlist_participant(  # noqa: E731
                tx.txid,
                TWO_PHASE_FACTORY,
                name=system if explicit else None,
                params={"system": system},
            )
        else:
            name = system
            call = lambda: self.c.enlist_participant(  # noqa: E731
                tx.txid, TwoPhaseProxy(target), name=system if explicit else None
            )
        if recoverable and target.unreachable:
            # The factory connects to the system: the caller sees the connection error.
            with pytest.raises(ConnectionError):
                call()
            return
        returned = call()
        if not saga:
            assert returned == name
        tx.join(name, system, recoverable, saga)

    def _finish(self, tx: TxModel, how: str, payload: dict[str, Any]) -> None:
        """Commit or roll back an open transaction; the result must be the predicted one."""
        if how == "rollback":
            self.model.rollback(tx)
            self.c.rollback_transaction(tx.txid)
            return
        expected = self.model.commit(tx, payload)
        got, pending = _commit(self.c, tx.txid, payload)
        assert (got, pending) == (expected, {m.name for m in tx.pending()}), tx.txid
        self._check_commit_data(tx, payload)

    def _check_commit_data(self, tx: TxModel, payload: dict[str, Any]) -> None:
        """Yes-voters got the caller's data, and the log carries it (in ``Opened``)."""
        for m in tx.members:
            system = self.world.systems[m.system]
            seen = system.done if tx.saga else system.prepared
            if tx.acked_commit or tx.txid in seen:
                assert seen.get(tx.txid) == payload, (tx.txid, m.name)
        if tx.acked_commit:
            assert opened_data(self.c, tx.txid) == [payload or None]

    def _stuck_problems(self) -> list[str]:
        """After a recovery pass, every participant still pending has a reason to be."""
        problems = []
        for view in self.c.unfinished():
            tx = self.model.txs[view.txid]
            commit = view.outcome is self.w.commit
            for part in view.pending():
                m = tx.member(part.name)
                assert m is not None
                system = self.world.systems[m.system]
                phase = "compensate" if tx.saga else ("commit" if commit else "rollback")
                if system.unreachable or not tx.reachable_member(m):
                    continue
                if system.failed_last(phase, tx.txid):
                    continue  # still failing on purpose; a later pass finishes it
                problems.append(
                    f"{view.txid}: {part.name} stays {part.state} after recovery although "
                    f"{m.system} is reachable, rebuildable and answers"
                )
        return problems

    # -- rules: participants and transactions ---------------------------------------------------

    @rule(target=systems, behaviour=behaviours)
    def new_system(self, behaviour: Behaviour) -> str:
        system = self.world.add(behaviour)
        self.world.register_step(self.registry, system.name)
        return system.name

    # Hypothesis sorts rules by (target, number of arguments, name) and favours the first
    # enabled one: `begin` is first on purpose, capped so that the favour then passes to
    # add_member and commit (1 argument each) rather than to piling up open transactions.
    @precondition(lambda self: len(self.model.open_txids()) < MAX_OPEN)
    @rule()
    def begin(self) -> None:
        started = self.clock.monotonic()
        txid = self.c.begin_transaction()
        self.model.begin(txid, started)
        self.begun_since_crash += 1

    @precondition(lambda self: self.world.systems)
    @rule(data=st.data())
    def add_member(self, data: st.DataObject) -> None:
        """Enlist a 2PC participant or register a saga step, recoverable (by registry
        name) or not (an object, or plain callables). Begins a transaction when no open
        one can take it."""
        system = data.draw(st.sampled_from(list(self.world.systems)), label="system")
        saga = data.draw(st.booleans(), label="saga")
        recoverable = data.draw(st.booleans(), label="recoverable")
        explicit = data.draw(st.booleans(), label="explicit name")
        mode = self.w.mode.SAGA if saga else self.w.mode.TWO_PHASE
        candidates = [
            txid
            for txid in self.model.open_txids()
            if self.model.txs[txid].mode in (None, mode)
            and system not in self.model.txs[txid].systems()
        ]
        if not candidates:
            self.begin()
            candidates = self.model.open_txids()[-1:]
        tx = self.model.txs[data.draw(st.sampled_from(candidates), label="txid")]
        self._join(tx, system, saga, recoverable, explicit)

    @precondition(lambda self: self.model.open_txids())
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        tx = self._pick_open(data)
        self._finish(tx, "commit", data.draw(commit_data, label="data"))

    @precondition(lambda self: self.model.open_txids())
    @rule(data=st.data())
    def rollback(self, data: st.DataObject) -> None:
        self._finish(self._pick_open(data), "rollback", {})

    @precondition(lambda self: len(self.model.txs) > len(self.model.open_txids()))
    @rule(data=st.data(), op=st.sampled_from(["commit", "rollback", "enlist", "register"]))
    def operate_on_closed(self, data: st.DataObject, op: str) -> None:
        """Any call on a transaction that has an outcome, or that a crash made vanish."""
        closed = [t for t in self.model.txs if not self.model.txs[t].open]
        txid = data.draw(st.sampled_from(closed), label="closed txid")
        tx = self.model.txs[txid]
        if tx.state is None:
            expected: type[Exception] = UnknownTransactionError
        elif ended(tx.state):
            expected = TransactionFinishedError
        else:
            expected = TransactionStateError  # decided, owned by recovery
        dummy = System("dummy", OK)
        calls = {
            "commit": lambda: self.c.commit_transaction(txid, {"x": 1}),
            "rollback": lambda: self.c.rollback_transaction(txid),
            "enlist": lambda: self.c.enlist_participant(txid, TwoPhaseProxy(dummy)),
            "register": lambda: self.c.register_participant(txid, "late", _never, _never),
        }
        with pytest.raises(expected) as info:
            calls[op]()
        assert type(info.value) is expected, info.value
        assert dummy.calls == []

    @precondition(lambda self: self.world.systems)
    @rule(data=st.data(), size=st.integers(2, 6), rollbacks=st.integers(0, 2))
    def concurrent_batch(self, data: st.DataObject, size: int, rollbacks: int) -> None:
        """Several callers at once, each beginning, joining and finishing its own
        transaction on its own thread."""
        names = sorted(self.world.systems)
        plans = data.draw(
            st.lists(
                st.tuples(
                    st.booleans(),  # saga
                    st.lists(
                        st.tuples(st.sampled_from(names), st.booleans()),
                        max_size=3,
                        unique_by=lambda p: p[0],
                    ),
                    st.sampled_from(["commit"] * (3 - rollbacks) + ["rollback"] * rollbacks),
                    batch_data,
                ),
                min_size=size,
                max_size=size,
            ),
            label="plans",
        )
        coord = self.c

        def run(plan: tuple[bool, list[tuple[str, bool]], str, dict[str, Any]]) -> Any:
            saga, members, how, payload = plan
            txid = coord.begin_transaction()
            joined = []
            for system, recoverable in members:
                target = self.world.systems[system]
                try:
                    if saga and recoverable:
                        coord.register_participant(txid, step_factory(system))
                        joined.append((step_factory(system), system, True))
                    elif saga:
                        name = f"fn:{system}"
                        coord.register_participant(txid, name, target.action, target.compensate)
                        joined.append((name, system, False))
                    elif recoverable:
                        coord.enlist_participant(
                            txid, TWO_PHASE_FACTORY, name=system, params={"system": system}
                        )
                        joined.append((system, system, True))
                    else:
                        coord.enlist_participant(txid, TwoPhaseProxy(target), name=system)
                        joined.append((system, system, False))
                except ConnectionError:
                    assert recoverable and target.unreachable
            if how == "rollback":
                coord.rollback_transaction(txid)
                return txid, saga, joined, how, payload, ("rolled back", set())
            return txid, saga, joined, how, payload, _commit(coord, txid, payload)

        with cf.ThreadPoolExecutor(len(plans), thread_name_prefix="caller") as pool:
            results = list(pool.map(run, plans))
        for txid, saga, joined, how, payload, got in results:
            tx = self.model.begin(txid, self.clock.monotonic())
            for name, system, recoverable in joined:
                tx.join(name, system, recoverable, saga)
            if how == "rollback":
                self.model.rollback(tx)
                continue
            expected = self.model.commit(tx, payload)
            assert got == (expected, {m.name for m in tx.pending()}), txid
            self._check_commit_data(tx, payload)

    # -- rules: failures -----------------------------------------------------------------------

    @rule(system=systems)
    def disconnect(self, system: str) -> None:
        """The system becomes unreachable: calls and factories raise ConnectionError."""
        self.world.systems[system].unreachable = True

    @rule(system=systems)
    def reconnect(self, system: str) -> None:
        self.world.systems[system].unreachable = False

    @precondition(lambda self: self.begun_since_crash > 0)  # else it mostly repeats itself
    @rule(data=st.data(), then=st.sampled_from(["nothing", "commit", "rollback"]))
    def crash_and_restart(self, data: st.DataObject, then: str) -> None:
        """kill -9 (``abandon``), optionally right after committing or rolling back a
        transaction and before any of that call's lazy records reached the log; then a
        new process: fresh registry, same systems, same directory. Recovery runs on open."""
        last = None
        if then != "nothing" and self.model.open_txids():
            last = self._pick_open(data)
            self._finish_then_lose_lazy_records(last, then)
        self.c.abandon()
        self.coord = None
        problems = closed_log_problems(self.path)  # what the crash left on disk
        assert not problems, "\n".join(problems)
        self.model.crash()
        if last is not None:
            self.model.lose_lazy_records(last, then)
        examined = self.model.recover()
        self.registry = self.world.registry()
        self.coord = self._open()
        self.settled.clear()
        self.begun_since_crash = 0
        report = self.c.last_recovery_report
        assert {a.txid for a in report.transactions} == examined
        for action in report.transactions:
            assert action.finished == ended(self.model.txs[action.txid].state)
        problems = self._stuck_problems()
        assert not problems, "\n".join(problems)

    def _finish_then_lose_lazy_records(self, tx: TxModel, how: str) -> None:
        """Finish ``tx`` with its lazy appends held back, so the crash that follows loses
        them all -- deterministically, unlike racing the log's flusher thread. Within one
        call no forced append may follow a lazy one (checked), so this is a state a real
        crash leaves."""
        dropped: list[Any] = []
        log: Any = self.c.log
        forced = log.append

        def append(records: Any, *, durable: bool = True) -> Any:
            if not durable:
                dropped.append(records)
                return None
            assert not dropped, f"a forced append {records} after lazy ones {dropped}"
            return forced(records, durable=True)

        log.append = append
        self._finish(tx, how, {"crash": True})

    @precondition(lambda self: self.model.open_txids())
    @rule(seconds=st.sampled_from([1.0, 30.0, ZOMBIE_TIMEOUT + 1, 2 * ZOMBIE_TIMEOUT]))
    def reap_zombies_after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        now = self.clock.monotonic()
        expected = {
            t.txid
            for t in self.model.txs.values()
            if t.open and now - t.started_at > ZOMBIE_TIMEOUT
        }
        for txid in expected:
            self.model.rollback(self.model.txs[txid])
        assert set(self.c.reap_zombies()) == expected

    @precondition(lambda self: self.model.unfinished_txids())
    @rule()
    def recover_now(self) -> None:
        expected = self.model.recover()
        report = self.c.recover_now()
        assert {a.txid for a in report.transactions} == expected
        assert set(report.finished) == {t for t in expected if ended(self.model.txs[t].state)}
        problems = self._stuck_problems()
        assert not problems, "\n".join(problems)

    @precondition(lambda self: self.model.unfinished_txids())
    @rule(data=st.data())
    def resolve_by_hand(self, data: st.DataObject) -> None:
        """An operator settles one pending participant by hand and records it."""
        txid = data.draw(st.sampled_from(self.model.unfinished_txids()), label="txid")
        tx = self.model.txs[txid]
        name = data.draw(st.sampled_from([m.name for m in tx.pending()]), label="participant")
        m = tx.member(name)
        assert m is not None
        outcome = "commit" if tx.state is self.w.tx.DECIDED_COMMIT else "rollback"
        self.world.systems[m.system].settle(txid, outcome, saga=tx.saga)
        view = self.c.resolve(
            txid, outcome, reason="settled by hand", participant=name, actor="hypothesis"
        )
        m.state = self.w.member.RESOLVED
        if not tx.pending():
            tx.state = self.w.tx.COMMITTED if outcome == "commit" else self.w.tx.ABORTED
        assert view.state is tx.state

    # -- rules: bad input ---------------------------------------------------------------------

    @precondition(lambda self: self.steps - self.last_bad_input >= BAD_INPUT_EVERY)
    @rule(
        data=st.data(),
        kind=st.sampled_from(BAD_INPUTS),
        op=st.sampled_from(["commit", "rollback", "enlist", "read", "resolve"]),
    )
    def refuse_bad_input(self, data: st.DataObject, kind: str, op: str) -> None:
        """Refused with the documented error; nothing changes (the invariants check that).
        Rate-limited: hypothesis would otherwise pick it for a third of all steps."""
        self.last_bad_input = self.steps
        open_txs = [self.model.txs[t] for t in self.model.open_txids()]
        with_members = [t for t in open_txs if t.members]
        unfinished = self.model.unfinished_txids()
        stranger = TwoPhaseProxy(System("stranger", OK))
        if kind == "unknown-txid":
            txid = str(uuid.uuid4())
            calls = {
                "commit": lambda: self.c.commit_transaction(txid),
                "rollback": lambda: self.c.rollback_transaction(txid),
                "enlist": lambda: self.c.enlist_participant(txid, stranger),
                "read": lambda: self.c.transaction(txid),
                "resolve": lambda: self.c.resolve(txid, "rollback", reason="test"),
            }
            with pytest.raises(UnknownTransactionError):
                calls[op]()
        elif kind == "not-a-txid":
            txid = data.draw(not_txids, label="not a txid")
            calls = {
                "commit": lambda: self.c.commit_transaction(txid),
                "rollback": lambda: self.c.rollback_transaction(txid),
                "enlist": lambda: self.c.enlist_participant(txid, stranger),
                "read": lambda: self.c.transaction(txid),
                "resolve": lambda: self.c.resolve(txid, "rollback", reason="test"),
            }
            with pytest.raises(UnknownTransactionError):
                calls[op]()
        elif kind == "unencodable-data" and open_txs:
            tx = data.draw(st.sampled_from(open_txs))
            with pytest.raises(UnencodableDataError):
                self.c.commit_transaction(tx.txid, data.draw(unencodable_data))
        elif kind == "unencodable-params" and open_txs:
            tx = data.draw(st.sampled_from(open_txs))
            params = {"system": "s0", **data.draw(unencodable_data)}
            with pytest.raises(UnencodableDataError):
                self.c.enlist_participant(tx.txid, TWO_PHASE_FACTORY, params=params)
        elif kind == "duplicate-name" and with_members:
            tx = data.draw(st.sampled_from(with_members))
            name = data.draw(st.sampled_from([m.name for m in tx.members]))
            with pytest.raises(DuplicateParticipantError):
                if tx.saga:
                    self.c.register_participant(tx.txid, name, _never, _never)
                else:
                    self.c.enlist_participant(tx.txid, stranger, name=name)
        elif kind == "mixed" and with_members:
            tx = data.draw(st.sampled_from(with_members))
            with pytest.raises(MixedTransactionError):
                if tx.saga:
                    self.c.enlist_participant(tx.txid, stranger, name="other")
                else:
                    self.c.register_participant(tx.txid, "other", _never, _never)
        elif kind == "unknown-factory" and open_txs:
            tx = data.draw(st.sampled_from(open_txs))
            with pytest.raises(UnknownFactoryError):
                self.c.enlist_participant(tx.txid, "no-such-factory")
        elif kind == "not-a-participant" and open_txs:
            tx = data.draw(st.sampled_from(open_txs))
            with pytest.raises(InvalidParticipantError):
                self.c.enlist_participant(tx.txid, object(), name="nobody")
        elif kind == "half-saga" and open_txs:
            tx = data.draw(st.sampled_from(open_txs))
            with pytest.raises(InvalidParticipantError):
                self.c.register_participant(tx.txid, "half", commit_function=_never)
        elif kind == "contradicting-resolve" and unfinished:
            tx = self.model.txs[data.draw(st.sampled_from(unfinished))]
            wrong = "rollback" if tx.state is self.w.tx.DECIDED_COMMIT else "commit"
            with pytest.raises(TransactionStateError):
                self.c.resolve(tx.txid, wrong, reason="wrong outcome")
        assert stranger.system.calls == []

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def log_matches_model(self) -> None:
        self.steps += 1
        if self.coord is None:
            return
        problems: list[str] = []
        for tx in self.model.txs.values():
            if tx.txid not in self.settled:
                problems += self._tx_problems(tx)
        unfinished = {v.txid for v in self.c.unfinished()}
        if unfinished != set(self.model.unfinished_txids()):
            problems.append(
                f"unfinished in the log {sorted(unfinished)}, "
                f"in the model {self.model.unfinished_txids()}"
            )
        in_doubt = {(d.txid, d.participant) for d in self.c.in_doubt()}
        if in_doubt != self.model.pending_pairs():
            problems.append(f"in doubt {in_doubt}, model {self.model.pending_pairs()}")
        problems += self._stats_problems(len(unfinished))
        assert not problems, "\n".join(problems)

    def _stats_problems(self, unfinished: int) -> list[str]:
        """stats() against the model: gauges match, counters since open add up."""
        s = self.c.stats()
        problems = []
        if s.live != len(self.model.open_txids()):
            problems.append(f"stats: live {s.live}, model open {self.model.open_txids()}")
        if s.unfinished != unfinished:  # the log was flushed by unfinished() just before
            problems.append(f"stats: unfinished {s.unfinished}, the log {unfinished}")
        if not s.in_doubt <= s.unfinished:
            problems.append(f"stats: in doubt {s.in_doubt} > unfinished {s.unfinished}")
        if s.committed + s.aborted > s.begun or s.incomplete > s.committed:
            problems.append(f"stats: counters do not add up: {s}")
        if s.recovery_passes < 1:
            problems.append("stats: the opening recovery pass was not counted")
        return problems

    @invariant()
    def systems_saw_only_legal_calls(self) -> None:
        problems = self.world.violations() + self.model.countdown_mismatches()
        assert not problems, "\n".join(problems)

    def _tx_problems(self, tx: TxModel) -> list[str]:
        view = self._view(tx.txid)
        members = [(m.name, m.system) for m in tx.members]
        problems = world_problems(self.world, view, tx.txid, members, tx.acked_commit, self.w)
        if view is None:
            if tx.state is not None:
                problems.append(f"{tx.txid}: unknown to the log, model says {tx.state}")
            return problems
        if tx.state is None:
            return [*problems, f"{tx.txid}: vanished in the model, log says {view.state}"]
        if view.state is not tx.state:
            problems.append(f"{tx.txid}: log says {view.state}, model {tx.state}")
        if view.mode is not tx.logged_mode:
            problems.append(f"{tx.txid}: log mode {view.mode!r}, model {tx.logged_mode!r}")
        logged = [(p.name, p.state) for p in view.ordered()]
        modelled = [(m.name, m.state) for m in tx.members]
        names = [name for name, _ in logged] == [m.name for m in tx.members]
        if not names or not all(
            tx.shows(m, state) for m, (_, state) in zip(tx.members, logged, strict=True)
        ):
            problems.append(f"{tx.txid}: log participants {logged}, model {modelled}")
        problems += history_problems(self.c, view)
        if not problems and ended(view.state):
            self.settled.add(tx.txid)
        return problems


def _auto_name(tx: TxModel, base: str) -> str:
    """The name ``enlist_participant`` picks when none is given (``base``, ``base#2``...)."""
    taken = {m.name for m in tx.members}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}#{n}", n + 1
    return name


def _commit(
    coord: TransactionCoordinator, txid: str, payload: dict[str, Any]
) -> tuple[str, set[str]]:
    """Commit and say how it ended: ``ok``, ``incomplete`` or ``aborted``, and who is pending."""
    try:
        coord.commit_transaction(txid, payload)
    except CommitIncompleteError as exc:
        return "incomplete", set(exc.pending)
    except TransactionAborted as exc:
        return "aborted", set(exc.pending)
    return "ok", set()


CoordinatorMachine.TestCase.settings = stateful_settings()
TestCoordinatorMachine = CoordinatorMachine.TestCase
