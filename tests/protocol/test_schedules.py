"""Hypothesis drives each machine through arbitrary schedules of events: votes, failures,
timeouts, late answers, operator actions, failed appends, and crashes after any command
followed by a restart from what was durable (tests/protocol/world.py checks the invariants
after every step, and atomicity at the end)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dtc_wal.protocol import Mode

from .world import Setup, World

# DTC_PROTOCOL_EXAMPLES=5000 for a longer hunt (docs/testing.md)
EXAMPLES = int(os.environ.get("DTC_PROTOCOL_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def drive(world: World, data: st.DataObject, max_steps: int = 40) -> None:
    for _ in range(data.draw(st.integers(0, max_steps), label="steps")):
        steps = world.steps()
        if not steps:
            break
        rare = [s for s in steps if s[0] in world.RARE]
        common = [s for s in steps if s[0] not in world.RARE]
        if rare and (not common or data.draw(st.integers(0, 7), label="rare?") == 0):
            steps = rare
        else:
            steps = common
        name, step = data.draw(st.sampled_from(steps), label="step")
        event(name)
        step(lambda options, label=name: data.draw(st.sampled_from(list(options)), label=label))
    world.drain()
    world.check_end()
    event(f"outcome {world.durable_outcome()}, {world.crashes} crash(es)")


@SETTINGS
@given(
    members=st.integers(0, 4),
    lists=st.lists(st.booleans(), max_size=4),
    data=st.data(),
)
def test_two_phase(members: int, lists: list[bool], data: st.DataObject) -> None:
    drive(World(Setup(Mode.TWO_PHASE, members, lists_prepared=tuple(lists))), data)


@SETTINGS
@given(members=st.integers(1, 4), data=st.data())
def test_saga(members: int, data: st.DataObject) -> None:
    drive(World(Setup(Mode.SAGA, members)), data)


@SETTINGS
@given(one_phase=st.booleans(), data=st.data())
def test_one_phase(one_phase: bool, data: st.DataObject) -> None:
    setup = Setup(Mode.TWO_PHASE, 1, commit_one_phase=(True,), one_phase=one_phase)
    drive(World(setup), data)
