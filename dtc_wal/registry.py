"""Named participant factories: how recovery gets a live participant back after a crash.

The log stores ``(factory name, params)`` for each recoverable participant; recovery calls
``registry.create(name, params)`` to rebuild it. The registry holds factories only, never
live connections of its own. (Saga steps of two importable module-level functions need no
registry: recovery imports them, :mod:`dtc_wal.recovery.rebuild`.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .errors import (
    DuplicateFactoryError,
    InvalidFactoryError,
    UnencodableDataError,
    UnknownFactoryError,
)
from .participant import CALLABLES_FACTORY, CallableStep

__all__ = ["Factory", "ParticipantRegistry"]

Factory = Callable[..., object]


class ParticipantRegistry:
    """Maps names to factories ``factory(**params) -> participant or saga step``.

    >>> registry = ParticipantRegistry()
    >>> @registry.factory("inventory")
    ... def make_inventory(sku: str) -> object: ...
    >>> "inventory" in registry
    True
    """

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}
        self._resources: dict[str, Callable[[], object]] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: Factory, *, replace: bool = False) -> None:
        """Register ``factory`` under ``name``; a second registration needs ``replace=True``.

        Raises :class:`~dtc_wal.errors.InvalidFactoryError` for a name that is not a
        non-empty str or a factory that is not callable,
        :class:`~dtc_wal.errors.DuplicateFactoryError` for a name already registered.
        """
        _check_registration("factory", name, factory)
        with self._lock:
            if name in self._factories and not replace:
                raise DuplicateFactoryError(
                    f"a factory named {name!r} is already registered; pick another name or "
                    "pass replace=True"
                )
            self._factories[name] = factory

    def register_functions(
        self,
        name: str,
        commit_function: Callable[[str, Mapping[str, Any]], object],
        rollback_function: Callable[..., object],
        *,
        replace: bool = False,
    ) -> None:
        """Register a saga step made of two callables under ``name``, recoverable by name.

        ``register_participant(txid, name)`` then adds the step; after a crash recovery
        gets it back from this registry, so the callables may be closures or bound methods
        (the application registers them again at start-up). ``rollback_function(txid)``,
        or ``rollback_function(txid, data)`` to get the data the action got.

        >>> registry = ParticipantRegistry()
        >>> registry.register_functions("order", print, print)
        >>> registry.create("order").rollback_takes_data
        True
        """
        step = CallableStep(commit_function, rollback_function)
        self.register(name, lambda **_params: step, replace=replace)

    def register_resource(
        self, name: str, factory: Callable[[], object], *, replace: bool = False
    ) -> None:
        """Register a :class:`~dtc_wal.participant.PreparedResource` factory under ``name``.

        Recovery calls ``factory()`` and asks the resource which transactions it holds
        prepared, so orphans (prepared, with no commit decision in the log) are rolled back.
        Bad names and factories raise as in :meth:`register`.
        """
        _check_registration("resource", name, factory)
        with self._lock:
            if name in self._resources and not replace:
                raise DuplicateFactoryError(
                    f"a resource named {name!r} is already registered; pick another name or "
                    "pass replace=True"
                )
            self._resources[name] = factory

    def resources(self) -> dict[str, Callable[[], object]]:
        """The registered resource factories by name (a copy)."""
        with self._lock:
            return dict(self._resources)

    def factory(self, name: str) -> Callable[[Factory], Factory]:
        """Decorator form of :meth:`register`."""

        def decorate(factory: Factory) -> Factory:
            self.register(name, factory)
            return factory

        return decorate

    def create(self, name: str, params: Mapping[str, Any] | None = None) -> object:
        """Build a participant; the factory's own exceptions propagate unchanged.

        Raises :class:`~dtc_wal.errors.UnknownFactoryError` when nothing is registered
        under ``name``, :class:`~dtc_wal.errors.UnencodableDataError` when ``params`` is
        not a mapping with str keys (they become the factory's keyword arguments).
        """
        with self._lock:
            factory = self._factories.get(name) if isinstance(name, str) else None
        if factory is None:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownFactoryError(
                f"no participant factory named {name!r} (registered: {known}); register it "
                "with ParticipantRegistry.register before opening the coordinator"
            )
        if params is not None and not isinstance(params, Mapping):
            raise UnencodableDataError(
                f"params of {name!r} must be a mapping (a dict of str keys), not "
                f"{type(params).__name__}"
            )
        keywords = dict(params or {})
        wrong = [k for k in keywords if not isinstance(k, str)]
        if wrong:
            raise UnencodableDataError(
                f"params of {name!r} have non-str keys {wrong!r}: they are the factory's "
                "keyword arguments, so every key must be a str"
            )
        return factory(**keywords)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._factories))

    def __len__(self) -> int:
        return len(self._factories)


def _check_registration(kind: str, name: object, factory: object) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidFactoryError(
            f"a {kind} name is a non-empty str (it is written to the log and looked up at "
            f"recovery), not {name!r}"
        )
    if name == CALLABLES_FACTORY:
        raise InvalidFactoryError(
            f"{CALLABLES_FACTORY!r} is reserved: the log names saga steps rebuilt by import "
            "with it; pick another name"
        )
    if not callable(factory):
        raise InvalidFactoryError(
            f"the {kind} registered as {name!r} is not callable ({factory!r}): pass the "
            "function or class that builds the participant"
        )
