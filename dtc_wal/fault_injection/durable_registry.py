"""Registry factories that rebuild the durable participants and saga steps by name, as
recovery (and the crash workload) needs them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..registry import ParticipantRegistry
from .durable_participants import DurableParticipant, DurableStep

__all__ = ["PARTICIPANT_FACTORY", "register_durable"]

PARTICIPANT_FACTORY = "durable"


def register_durable(
    registry: ParticipantRegistry,
    directory: str | os.PathLike[str],
    *,
    steps: Iterable[str] = (),
    participant_factory: str | None = PARTICIPANT_FACTORY,
) -> ParticipantRegistry:
    """Register the durable factories, all keeping their files in ``directory``.

    ``participant_factory`` (default ``"durable"``; None: none) builds a
    :class:`DurableParticipant` from params ``{"name": ..., **options}`` (its keyword
    arguments). A saga step is logged under its factory's name, so each name in ``steps``
    gets its own factory building a :class:`DurableStep` of that name (params ``fail``,
    ``delay``).
    Returns ``registry``.
    """
    path = Path(directory)

    def participant(name: str, **options: Any) -> DurableParticipant:
        return DurableParticipant(path, name, **options)

    if participant_factory is not None:
        registry.register(participant_factory, participant)
    for step in steps:
        registry.register(step, _step_factory(path, step))
    return registry


def _step_factory(path: Path, name: str) -> Callable[..., DurableStep]:
    def step(**options: Any) -> DurableStep:
        return DurableStep(path, name, **options)

    return step
