"""Registry factories that rebuild the durable participants and saga steps by name, as
recovery (and the crash workload) needs them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import InvalidOptionError
from ..registry import ParticipantRegistry
from .durable_participants import (
    DurableParticipant,
    DurableStep,
    ListingDurableParticipant,
    OnePhaseDurableParticipant,
)
from .durable_resource import DurablePreparedResource

__all__ = [
    "LISTING_FACTORY",
    "ONE_PHASE_FACTORY",
    "PARTICIPANT_FACTORY",
    "RESOURCE_NAME",
    "register_durable",
]

PARTICIPANT_FACTORY = "durable"
ONE_PHASE_FACTORY = "durable-one-phase"
LISTING_FACTORY = "durable-listing"
RESOURCE_NAME = "durable-prepared"


def register_durable(
    registry: ParticipantRegistry,
    directory: str | os.PathLike[str],
    *,
    steps: Iterable[str] = (),
    participant_factory: str | None = PARTICIPANT_FACTORY,
    one_phase_factory: str | None = None,
    listing: Iterable[str] = (),
) -> ParticipantRegistry:
    """Register the durable factories, all keeping their files in ``directory``.

    ``participant_factory`` (default ``"durable"``; None: none) builds a
    :class:`DurableParticipant` from params ``{"name": ..., **options}`` (its keyword
    arguments). A saga step is logged under its factory's name, so each name in ``steps``
    gets its own factory building a :class:`DurableStep` of that name (params ``fail``,
    ``delay``).

    ``one_phase_factory`` (e.g. ``"durable-one-phase"``) builds a
    :class:`OnePhaseDurableParticipant` the same way. ``listing`` names the participants
    that list what they hold prepared: the factory ``"durable-listing"`` builds a
    :class:`ListingDurableParticipant` for each of them (and refuses other names), and one
    :class:`DurablePreparedResource` over their files is registered as resource
    ``"durable-prepared"``.
    Returns ``registry``.
    """
    path = Path(directory)

    def participant(name: str, **options: Any) -> DurableParticipant:
        return DurableParticipant(path, name, **options)

    def one_phase(name: str, **options: Any) -> OnePhaseDurableParticipant:
        return OnePhaseDurableParticipant(path, name, **options)

    listed = tuple(listing)

    def listing_participant(name: str, **options: Any) -> ListingDurableParticipant:
        if name not in listed:
            raise InvalidOptionError(
                f"{name!r} is not covered by the {RESOURCE_NAME} resource ({', '.join(listed)})"
            )
        return ListingDurableParticipant(path, name, **options)

    if participant_factory is not None:
        registry.register(participant_factory, participant)
    if one_phase_factory is not None:
        registry.register(one_phase_factory, one_phase)
    if listed:
        registry.register(LISTING_FACTORY, listing_participant)
        registry.register_resource(RESOURCE_NAME, lambda: DurablePreparedResource(path, listed))
    for step in steps:
        registry.register(step, _step_factory(path, step))
    return registry


def _step_factory(path: Path, name: str) -> Callable[..., DurableStep]:
    def step(**options: Any) -> DurableStep:
        return DurableStep(path, name, **options)

    return step
