"""The participant contracts. Their docstrings are the specification, phase by phase.

Two shapes take part in transactions:

* :class:`Participant` -- two-phase commit: ``prepare`` (vote), then ``commit`` or
  ``rollback``. Enlisted with ``enlist_participant``.
* :class:`SagaStep` -- an ordered saga step: ``action`` does the work at once and
  ``compensate`` undoes it. Registered with ``register_participant`` (from two callables,
  recoverable when they are importable module-level functions, or by registry name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from .errors import InvalidParticipantError
from .import_paths import NotImportable, import_path, resolve, takes_data
from .states import Vote

__all__ = [
    "CALLABLES_FACTORY",
    "NOT_RECOVERABLE",
    "CallableStep",
    "OnePhaseParticipant",
    "Participant",
    "PreparedResource",
    "SagaStep",
    "as_participant",
    "as_saga_step",
    "compensation_takes_data",
]


@runtime_checkable
class Participant(Protocol):
    """A resource that takes part in two-phase commit.

    Every method receives the coordinator's transaction id; use it as the key of whatever
    the participant holds for the transaction. Calls may come from any thread and, after
    timeouts and crashes, more than once: each method says what it must tolerate.
    """

    # Optional attribute ``lists_prepared = True``: this participant's prepared work can be
    # listed by a PreparedResource registered in the coordinator's registry (XA recover,
    # pg_prepared_xacts). When every participant of a transaction says so, the opening
    # records are not forced to disk before prepare (one synced write less, docs/protocol.md).

    def prepare(self, transaction_id: str, data: Mapping[str, Any]) -> Vote | None:
        """Vote. Return ``dtc_wal.READ_ONLY`` when the participant changed nothing: it is
        then left out of phase two. Return None to vote yes: from then on it must be able to
        commit even after its own crash. Raise :class:`dtc_wal.errors.VoteNo` (or any
        exception that is not transient) to vote no; raise
        :class:`dtc_wal.errors.TransientError`, ``ConnectionError`` or ``TimeoutError`` to be
        asked again with backoff. May be called again after a timeout."""

    def commit(self, transaction_id: str) -> None:
        """Make the prepared work permanent. Must not fail for a business reason; may be
        called more than once (also after a restart of either side) and must then do
        nothing. An exception means "not yet": the coordinator retries, and recovery keeps
        retrying until it succeeds."""

    def rollback(self, transaction_id: str) -> None:
        """Undo prepared work. May be called more than once, for a transaction id that was
        never prepared (then record it and do nothing), or before a late ``prepare``
        arrives (which must then vote no)."""


@runtime_checkable
class OnePhaseParticipant(Participant, Protocol):
    """Optional: a participant that can commit in one call when it is alone."""

    def commit_one_phase(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        """Commit at once, without a prepare (used when it is the transaction's only
        participant). Return only when committed; raise to refuse (the coordinator then
        sends ``rollback``, which must undo or ignore it). May be called again after a
        timeout, like ``prepare``. Nothing is forced to the coordinator's log first: this
        participant's own commit is the decision."""


@runtime_checkable
class SagaStep(Protocol):
    """One step of an ordered saga: forward action and its compensation."""

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        """Do the step's work and make it durable on the participant's side. Raising
        decides the saga's abort (transient errors are retried first)."""

    def compensate(self, transaction_id: str) -> None:
        """Undo the step. Runs in reverse registration order after an abort; may run more
        than once and for a step whose action never ran (do nothing then).

        May be declared ``compensate(self, transaction_id, data)``: it then gets the
        ``data`` the action got, also after a crash (it is logged before the first
        action runs)."""


@runtime_checkable
class PreparedResource(Protocol):
    """A resource manager that can list what it holds prepared (XA ``recover``,
    PostgreSQL ``pg_prepared_xacts``). Registered with
    :meth:`ParticipantRegistry.register_resource`; recovery asks it at start-up and in the
    background loop, commits what the log shows decided-commit and rolls back everything
    else the log does not show as in progress (presumed abort, orphan resolution)."""

    def prepared_transactions(self) -> Iterable[str]:
        """Coordinator transaction ids this resource holds prepared, limited to those
        that belong to this coordinator (e.g. by a gid prefix)."""

    def commit_prepared(self, transaction_id: str) -> None:
        """Commit a prepared branch; a no-op when it is no longer prepared."""

    def rollback_prepared(self, transaction_id: str) -> None:
        """Roll back a prepared branch; a no-op when it is no longer prepared."""


CALLABLES_FACTORY = "dtc_wal:callables"
"""The factory name logged for a step of two importable functions; its params are
``{"commit": "module:qualname", "rollback": "module:qualname"}`` (docs/log-format.md).
Recovery imports them; no registry factory of this name is ever called."""

NOT_RECOVERABLE = "not-recoverable"
"""The params key logged, without a factory, for a step of callables that cannot be
imported back; its value says why (recovery reports it)."""


class CallableStep:
    """A saga step from two callables: ``commit_function(txid, data)`` and
    ``rollback_function(txid)`` -- the seed's ``register_participant`` form -- or
    ``rollback_function(txid, data)``, which gets the data the action got. Which one is
    decided once, here, from the signature (a second positional parameter)."""

    __slots__ = ("commit_function", "rollback_function", "rollback_takes_data")

    def __init__(
        self,
        commit_function: Callable[[str, Mapping[str, Any]], object],
        rollback_function: Callable[..., object],
    ) -> None:
        if not callable(commit_function) or not callable(rollback_function):
            raise InvalidParticipantError(
                "register_participant needs a callable commit_function(txid, data) and a "
                "callable rollback_function(txid) or rollback_function(txid, data)"
            )
        self.commit_function = commit_function
        self.rollback_function = rollback_function
        self.rollback_takes_data = takes_data(rollback_function)

    @classmethod
    def from_log(cls, params: Mapping[str, Any]) -> CallableStep:
        """Rebuild from the logged import paths; raises ImportError (or AttributeError,
        TypeError) naming the path that does not import."""
        paths = [params.get(key) for key in ("commit", "rollback")]
        if not all(isinstance(path, str) for path in paths):
            raise ImportError(f"the log holds no import paths for both functions: {params}")
        return cls(resolve(paths[0]), resolve(paths[1]))  # type: ignore[arg-type]

    def log_entry(self) -> tuple[str | None, dict[str, str]]:
        """``(factory, params)`` for the ENLISTED record: :data:`CALLABLES_FACTORY` and the
        import paths, or no factory and ``{NOT_RECOVERABLE: why}``."""
        paths: dict[str, str] = {}
        for key, role, fn in (
            ("commit", "commit_function", self.commit_function),
            ("rollback", "rollback_function", self.rollback_function),
        ):
            path = import_path(fn)
            if isinstance(path, NotImportable):
                name = getattr(fn, "__qualname__", None) or type(fn).__name__
                return None, {NOT_RECOVERABLE: f"its {role} {name} is {path.reason}"}
            paths[key] = path
        return CALLABLES_FACTORY, paths

    def action(self, transaction_id: str, data: Mapping[str, Any]) -> None:
        self.commit_function(transaction_id, data)

    def compensate(self, transaction_id: str, data: Mapping[str, Any] | None = None) -> None:
        if self.rollback_takes_data:
            self.rollback_function(transaction_id, {} if data is None else data)
        else:
            self.rollback_function(transaction_id)

    def __repr__(self) -> str:
        return (
            f"CallableStep({getattr(self.commit_function, '__qualname__', '?')}, "
            f"{getattr(self.rollback_function, '__qualname__', '?')})"
        )


def compensation_takes_data(step: object) -> bool:
    """True when the step's ``compensate`` accepts ``(txid, data)`` (checked once, when
    the step is registered or rebuilt)."""
    compensate = getattr(step, "compensate", None)
    return callable(compensate) and takes_data(compensate)


def as_participant(obj: object, what: str) -> Participant:
    """Check that ``obj`` has callable prepare/commit/rollback, or raise naming ``what``."""
    missing = [m for m in ("prepare", "commit", "rollback") if not callable(getattr(obj, m, None))]
    if missing:
        raise InvalidParticipantError(
            f"{what} ({type(obj).__name__}) is not a participant: it lacks "
            f"{', '.join(missing)}; give an object with prepare(txid, data), commit(txid) "
            "and rollback(txid), or use register_participant for saga callables"
        )
    return obj  # type: ignore[return-value]


def as_saga_step(obj: object, what: str) -> SagaStep:
    missing = [m for m in ("action", "compensate") if not callable(getattr(obj, m, None))]
    if missing:
        raise InvalidParticipantError(
            f"{what} ({type(obj).__name__}) is not a saga step: it lacks "
            f"{', '.join(missing)}; a registry factory used with register_participant must "
            "return an object with action(txid, data) and compensate(txid) (or "
            "compensate(txid, data))"
        )
    return obj  # type: ignore[return-value]
