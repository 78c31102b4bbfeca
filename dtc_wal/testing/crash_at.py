"""Run a program of yours with crash points armed in its process.

::

    python -m dtc_wal.testing.crash_at NAME[:N][,NAME[:N]...] SCRIPT [ARG...]
    python -m dtc_wal.testing.crash_at NAME[:N][,NAME[:N]...] -m MODULE [ARG...]

arms the points (:func:`.points.arm_spec`: kill at the N-th hit, default 1), then runs
``SCRIPT`` (or ``-m MODULE``) in this same process, as ``python SCRIPT ARG...`` would:
``sys.argv`` and ``sys.path[0]`` as for the script, which runs as ``__main__``. When the
program passes an armed point the process SIGKILLs itself (exit status 137, or -9 from
``subprocess``). A bad spec exits with status 2 and says what it accepts.

The program needs no change: this wrapper is the explicit call that arms. A process started
any other way is never killed by a crash point, whatever its environment holds.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

from ..errors import InvalidOptionError
from .points import arm_spec, parse_spec

__all__ = ["command", "main"]

MODULE = "dtc_wal.testing.crash_at"
USAGE = (
    "usage: python -m dtc_wal.testing.crash_at NAME[:N][,NAME[:N]...] SCRIPT [ARG...]\n"
    "       python -m dtc_wal.testing.crash_at NAME[:N][,NAME[:N]...] -m MODULE [ARG...]"
)


def command(spec: str, *program: str) -> list[str]:
    """The command line running ``program`` (``SCRIPT ARG...`` or ``-m MODULE ARG...``)
    under this wrapper with ``spec`` armed, for ``subprocess``; a bad ``spec`` raises
    :class:`~dtc_wal.errors.InvalidOptionError` here, before anything starts.

    >>> command("decision.after-commit-log", "shop.py", "shop-log")[1:]
    ['-m', 'dtc_wal.testing.crash_at', 'decision.after-commit-log', 'shop.py', 'shop-log']
    """
    parse_spec(spec)
    return [sys.executable, "-m", MODULE, spec, *program]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    module = len(args) >= 2 and args[1] == "-m"
    if len(args) < (3 if module else 2):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        arm_spec(args[0])
    except InvalidOptionError as exc:
        print(f"error: {exc}\n{USAGE}", file=sys.stderr)
        return 2
    if module:
        sys.argv = [args[2], *args[3:]]
        runpy.run_module(args[2], run_name="__main__", alter_sys=True)
    else:
        script = args[1]
        sys.argv = [script, *args[2:]]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
