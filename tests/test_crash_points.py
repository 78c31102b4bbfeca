"""Crash points are armed only by an explicit call in the process meant to die (issue 12,
item 5): never from the environment, never by importing ``dtc_wal``. Also the runner
``python -m dtc_wal.testing.crash_at``, the deprecated ``dtc_wal.fault_injection`` alias,
and the "test your own participant against crashes" example of docs/testing.md, run here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dtc_wal.errors import InvalidOptionError
from dtc_wal.testing import CRASH_POINTS, arm, arm_spec, disarm, hits, parse_spec
from dtc_wal.testing.crash_at import command
from dtc_wal.testing.harness import workload_command
from dtc_wal.testing.points import ARMED

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

COMMIT_ONE = """
import sys
from dtc_wal import TransactionCoordinator

class Ok:
    def prepare(self, txid, data): pass
    def commit(self, txid): pass
    def rollback(self, txid): pass

with TransactionCoordinator(sys.argv[1], recovery_interval=None) as coord:
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, Ok(), name="a")
    coord.enlist_participant(txid, Ok(), name="b")
    coord.commit_transaction(txid)
    print(coord.state(txid).value)
"""


def python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DTC_CRASH_AT"}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_process_that_inherits_DTC_CRASH_AT_commits_and_lives(tmp_path: Path) -> None:
    """The variable armed points at import in earlier releases: a production process that
    inherited it SIGKILLed itself at its first commit decision."""
    ran = python(
        "-c", COMMIT_ONE, str(tmp_path / "log"), env={"DTC_CRASH_AT": "decision.after-commit-log"}
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["committed"]


@pytest.mark.parametrize("value", ["decision.after-commit-log:x", "nowhere", "prepare:0,"])
def test_a_malformed_DTC_CRASH_AT_does_not_break_import(value: str) -> None:
    ran = python("-c", "import dtc_wal, dtc_wal.testing; print('ok')", env={"DTC_CRASH_AT": value})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "ok"


def test_the_library_loads_no_test_machinery() -> None:
    """Importing the library (coordinator, log, recovery, CLI) does not import
    ``dtc_wal.testing`` or its alias; the hook the hot paths call is all that is loaded."""
    code = (
        "import sys, dtc_wal, dtc_wal.cli.main, dtc_wal.recovery, dtc_wal.log.lmdb\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('dtc_wal.testing', 'dtc_wal.fault_injection', 'dtc_wal._crash_hooks'))))"
    )
    ran = python("-c", code)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "['dtc_wal._crash_hooks']"


def test_arm_spec_parses_names_and_counts() -> None:
    assert parse_spec("decision.after-commit-log") == [("decision.after-commit-log", 1)]
    assert parse_spec(" wal.after-sync:2 , commit.after-first ") == [
        ("wal.after-sync", 2),
        ("commit.after-first", 1),
    ]
    try:
        arm_spec("wal.after-sync:1000000000000,complete.after-log:7")
        assert ARMED == {"wal.after-sync": 10**12, "complete.after-log": 7}
        assert hits() == {}
    finally:
        disarm()
    assert ARMED == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "names no point; give NAME"),
        (" , ", "names no point"),
        ("decision.after-commit", "unknown crash point 'decision.after-commit'"),
        ("wal.after-sync:x", r"the count after ':' is the hit that kills.*wal.after-sync:2"),
        ("wal.after-sync:0", "a whole number from 1"),
        ("wal.after-sync:-1", "a whole number from 1"),
    ],
)
def test_a_bad_spec_raises_and_arms_nothing(spec: str, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        arm_spec(f"commit.after-first,{spec}" if spec.strip(" ,") else spec)
    assert ARMED == {}  # all or none: the good point before the bad one is not armed


def test_arm_refuses_a_count_that_is_not_a_positive_int() -> None:
    for bad in (0, True, 1.5, "2"):
        with pytest.raises(InvalidOptionError, match="on_hit counts from 1"):
            arm(CRASH_POINTS[0], on_hit=bad)  # type: ignore[arg-type]
    assert ARMED == {}


def test_the_runner_arms_then_runs_the_program_as_python_would(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(
        "import sys\nfrom dtc_wal.testing.points import ARMED\n"
        "print(__name__, sys.argv, sys.path[0], ARMED)\n"
    )
    ran = python(*command("commit.after-first:3", str(script), "x", "--y")[1:], env={})
    assert ran.returncode == 0, ran.stderr
    expected = f"__main__ {[str(script), 'x', '--y']} {tmp_path} {{'commit.after-first': 3}}"
    assert ran.stdout.strip() == expected


def test_the_runner_kills_the_program_at_the_point(tmp_path: Path) -> None:
    script = tmp_path / "commit.py"
    script.write_text(COMMIT_ONE)
    ran = python(*command("decision.after-commit-log", str(script), str(tmp_path / "log"))[1:])
    assert ran.returncode == -signal.SIGKILL, ran.stderr
    assert ran.stdout == ""


def test_the_runner_runs_a_module_with_dash_m(tmp_path: Path) -> None:
    (tmp_path / "prog_mod.py").write_text("import sys; print(__name__, sys.argv[1:])\n")
    ran = subprocess.run(
        command("wal.before-sync", "-m", "prog_mod", "a"),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "__main__ ['a']"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "prog.py"], "error: unknown crash point 'nowhere'"),
        (["wal.after-sync"], "usage: python -m dtc_wal.testing.crash_at"),
        (["wal.after-sync", "-m"], "usage: python -m dtc_wal.testing.crash_at"),
    ],
)
def test_the_runner_refuses_a_bad_command_line(args: list[str], message: str) -> None:
    ran = python("-m", "dtc_wal.testing.crash_at", *args)
    assert ran.returncode == 2
    assert message in ran.stderr


def test_command_checks_the_spec_before_anything_starts() -> None:
    with pytest.raises(InvalidOptionError, match="unknown crash point"):
        command("decision.after-comit-log", "prog.py")


def test_the_workload_refuses_a_bad_crash_at(tmp_path: Path) -> None:
    args = ["recover", "--log", str(tmp_path / "log"), "--state", str(tmp_path / "state")]
    args += ["--report", str(tmp_path / "r.json"), "--crash-at", "complete.after-log:none"]
    ran = python(*workload_command(*args)[1:])
    assert ran.returncode == 2
    assert "argument --crash-at: crash point 'complete.after-log:none'" in ran.stderr
    assert not (tmp_path / "log").exists()  # refused before it opened anything


def test_fault_injection_is_a_deprecated_alias_of_dtc_wal_testing() -> None:
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from dtc_wal.fault_injection import arm, FailTimes\n"
        "    from dtc_wal.fault_injection.harness import Case\n"
        "import dtc_wal.testing, dtc_wal.testing.harness as harness\n"
        "assert arm is dtc_wal.testing.arm and FailTimes is dtc_wal.testing.FailTimes\n"
        "assert Case is harness.Case\n"
        "print([(w.category.__name__, str(w.message)) for w in caught])\n"
    )
    ran = python("-c", code)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == repr(
        [
            (
                "DeprecationWarning",
                "dtc_wal.fault_injection is deprecated and will be removed in the next "
                "release: import dtc_wal.testing instead (crash points are armed by "
                "dtc_wal.testing.arm, no longer by DTC_CRASH_AT)",
            )
        ]
    )


def _docs_example() -> str:
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text.split("### Test your own participant against crashes", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "docs/testing.md lost its example"
    return found.group(1)


def test_the_docs_example_of_testing_your_own_participant_passes(tmp_path: Path) -> None:
    """docs/testing.md's example, saved as the file it says and run with pytest."""
    (tmp_path / "test_ledger_crashes.py").write_text(_docs_example())
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_ledger_crashes.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "5 passed" in ran.stdout
