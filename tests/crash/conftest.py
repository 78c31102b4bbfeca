"""The crash tests arm crash points only in the processes they start and kill.

A ``DTC_CRASH_AT`` left in the shell would arm them in pytest itself, which the in-process
restarts would then SIGKILL: disarm here, and keep the variable out of child processes too
(the harness sets it per run).
"""

from __future__ import annotations

import os

from dtc_wal.fault_injection import points

os.environ.pop("DTC_CRASH_AT", None)
points.disarm()
