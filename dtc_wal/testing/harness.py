"""Kill a real coordinator process, restart on its log, let recovery run, check.

>>> import tempfile
>>> case = Case.create(tempfile.mkdtemp())
>>> run = case.run("2pc-commit", count=2, crash_at="commit.after-first")
>>> run.killed_by_sigkill
True
>>> case.restart().in_doubt
[]
>>> case.check().ok
True

A :class:`Case` is one directory holding a log (``log/``), the durable participants'
files (``state/``) and the workload's acknowledgement file (``acks``). :meth:`Case.run`
starts ``python -m dtc_wal.testing.workload run`` and either has it arm a crash point
(``--crash-at NAME[:N]`` on its command line: the child arms it itself, nothing goes
through the environment) or sends SIGKILL from here after a delay; :meth:`Case.restart`
opens a coordinator on the same log (in this process or in a new one), which recovers;
:meth:`Case.check` checks the invariants of :mod:`.checks`.

Crash points as driver commands (a later core): should the protocol become a machine whose
driver executes commands, "kill after command N" is one more kind of ``--crash-at`` value
that the workload arms by wrapping its driver (SIGKILL before executing command N);
``Case.run(crash_at=...)`` passes the value through unchanged, and the matrix enumerates
command kinds instead of :data:`.points.CRASH_POINTS`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..coordinator import TransactionCoordinator
from ..log.lmdb import log_format
from ..recovery.report import InDoubt, RecoveryReport
from .checks import CheckResult, check_invariants
from .workload import coordinator_options, make_registry

__all__ = ["Case", "Recovered", "Run", "workload_command"]

WORKLOAD = "dtc_wal.testing.workload"
PROCESS_TIMEOUT = 60.0
"""No workload run in the harness should take this long; a hang is a failure."""


def workload_command(*args: str) -> list[str]:
    return [sys.executable, "-m", WORKLOAD, *args]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # so `-m dtc_wal...` finds this tree
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


@dataclasses.dataclass(slots=True)
class Run:
    """How a workload process ended."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    ready: bool
    """It printed "ready": its coordinator opened (and recovered) before the kill."""
    census: dict[str, int] | None = None
    log_format: int | None = None
    """The format of the log on disk when it ended: 2, the only one the coordinator makes
    (None: it made no log, e.g. killed before it opened one)."""

    @property
    def killed_by_sigkill(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def describe(self) -> str:
        return (
            f"`{' '.join(self.command)}` exited with {self.returncode}\n"
            f"--- stdout\n{self.stdout[-2000:]}--- stderr\n{self.stderr[-4000:]}"
        )


@dataclasses.dataclass(slots=True)
class Recovered:
    """What a restart found: its recovery report and what stayed unfinished."""

    report: RecoveryReport | dict[str, Any]
    in_doubt: list[InDoubt] | list[dict[str, Any]]
    unfinished: list[str]
    stale_readers_cleared: int


def _read_ready(proc: subprocess.Popen[str], deadline: float) -> bool:
    """Wait for the "ready" line (True), or for the process to end first (False)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            return False
        buffer += chunk
        if b"ready\n" in buffer:
            return True
    raise TimeoutError(f"workload did not become ready within {PROCESS_TIMEOUT}s")


@dataclasses.dataclass(slots=True)
class Case:
    """One log, its participants and its acknowledgements, under ``root``."""

    root: Path

    @classmethod
    def create(cls, root: str | os.PathLike[str]) -> Case:
        case = cls(Path(root))
        case.state.mkdir(parents=True, exist_ok=True)
        return case

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def acks(self) -> Path:
        return self.root / "acks"

    def run_args(
        self,
        scenario: str,
        count: int,
        threads: int = 1,
        width: int = 3,
        seed: int = 0,
        recovery_interval: float | None = None,
        lazy_delay: float | None = None,
    ) -> list[str]:
        args = ["run", "--log", str(self.log), "--state", str(self.state)]
        args += ["--acks", str(self.acks), "--scenario", scenario, "--count", str(count)]
        args += ["--threads", str(threads), "--width", str(width), "--seed", str(seed)]
        if recovery_interval is not None:
            args += ["--recovery-interval", str(recovery_interval)]
        if lazy_delay is not None:
            args += ["--lazy-delay", str(lazy_delay)]
        return args

    def run(
        self,
        scenario: str,
        *,
        count: int = 1,
        crash_at: str | None = None,
        kill_after: float | None = None,
        wait_ready: bool = True,
        census: bool = False,
        **options: Any,
    ) -> Run:
        """Run the workload until it ends, dies at ``crash_at`` or is killed here.

        ``kill_after``: SIGKILL it that many seconds after it printed "ready" (after it
        started, with ``wait_ready=False``). ``census``: count crash point hits, no kill.
        """
        args = self.run_args(scenario, count, **options)
        census_file = self.root / "census.json"
        if census:
            census_file.unlink(missing_ok=True)
            args += ["--census", str(census_file)]
        return self._spawn(args, crash_at, kill_after, wait_ready, census_file if census else None)

    def _spawn(
        self,
        args: Sequence[str],
        crash_at: str | None,
        kill_after: float | None,
        wait_ready: bool,
        census_file: Path | None,
    ) -> Run:
        command = workload_command(*args, *(("--crash-at", crash_at) if crash_at else ()))
        deadline = time.monotonic() + PROCESS_TIMEOUT
        # stderr goes to a file: a pipe nobody reads before "ready" could fill and stall it
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=err,
                env=_environment(),
                text=True,
            )
            ready = False
            try:
                if kill_after is not None and not wait_ready:
                    time.sleep(kill_after)
                    proc.send_signal(signal.SIGKILL)
                else:
                    ready = _read_ready(proc, deadline)
                    if kill_after is not None and ready:
                        time.sleep(kill_after)
                        proc.send_signal(signal.SIGKILL)
                stdout, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except BaseException:
                proc.kill()
                proc.communicate()
                raise
            err.seek(0)
            stderr = err.read()
        ready = ready or "ready\n" in stdout
        result = Run(command, proc.returncode, stdout, stderr, ready, None, log_format(self.log))
        if census_file is not None and census_file.exists():
            result.census = json.loads(census_file.read_text())
        return result

    def recover_process(self, crash_at: str | None = None, census: bool = False) -> Run:
        """Run recovery in a new process (``workload recover``), which may itself be killed
        at ``crash_at``; its report goes to ``<root>/recovery.json``."""
        args = ["recover", "--log", str(self.log), "--state", str(self.state)]
        args += ["--report", str(self.root / "recovery.json")]
        census_file = self.root / "census.json"
        if census:
            census_file.unlink(missing_ok=True)
            args += ["--census", str(census_file)]
        return self._spawn(args, crash_at, None, False, census_file if census else None)

    def restart(self, *, in_process: bool = True, settle: float = 0.0, **options: Any) -> Recovered:
        """Open a coordinator on the log (recovery runs on open), note what it found, close.

        ``options`` override :func:`.workload.coordinator_options` (in process only).
        ``settle``: let the background loop retry for up to that many seconds until nothing
        is in doubt -- for participants that fail a few times and then answer.
        """
        if not in_process:
            run = self.recover_process()
            if run.returncode != 0:
                raise RuntimeError(f"recovery process failed: {run.describe()}")
            data = json.loads((self.root / "recovery.json").read_text())
            return Recovered(
                data, data["in_doubt"], data["unfinished"], data["stale_readers_cleared"]
            )
        if settle:
            options.setdefault("recovery_interval", 0.02)
        coord = TransactionCoordinator(
            self.log, registry=make_registry(self.state), **{**coordinator_options(), **options}
        )
        try:
            deadline = time.monotonic() + settle
            while coord.in_doubt() and time.monotonic() < deadline:
                time.sleep(0.02)
            return Recovered(
                coord.last_recovery_report,
                coord.in_doubt(),
                [v.txid for v in coord.unfinished()],
                coord.last_recovery_report.stale_readers_cleared,
            )
        finally:
            coord.close()

    def check(self) -> CheckResult:
        """The invariants of :mod:`.checks`; call with no coordinator open on the log."""
        return check_invariants(self.log, self.state, self.acks)
