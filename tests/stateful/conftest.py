"""Hypothesis profiles for the stateful tests, registered here and used only here.

``default`` is what CI runs: at least 200 examples of 50 steps. ``slow`` runs ten times as
many examples; select it with ``DTC_HYPOTHESIS_PROFILE=slow``. ``quick`` is for editing the
machine itself. The profiles are applied to this folder's tests only (see
:func:`stateful_settings`); the global hypothesis profile of the rest of the suite is left
alone.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "DTC_HYPOTHESIS_PROFILE"

_COMMON = {
    "deadline": None,
    "stateful_step_count": 50,
    # Each step fsyncs a real LMDB log: slower than hypothesis expects of a data generator.
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

settings.register_profile("dtc-stateful-quick", max_examples=20, **_COMMON)
settings.register_profile("dtc-stateful-default", max_examples=200, **_COMMON)
settings.register_profile("dtc-stateful-slow", max_examples=2000, **_COMMON)


def profile_name() -> str:
    return os.environ.get(PROFILE_ENV, "default")


def stateful_settings() -> settings:
    """The settings object for the profile named by ``DTC_HYPOTHESIS_PROFILE``."""
    name = profile_name()
    try:
        return settings.get_profile(f"dtc-stateful-{name}")
    except Exception as exc:  # InvalidArgument: say which names exist
        raise ValueError(
            f"{PROFILE_ENV}={name!r} is not a profile; use quick, default or slow"
        ) from exc
