"""The README's demo (`python3 dev.py demo` -> `dtc demo`) tells the story it promises."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dtc_wal.cli import cli
from dtc_wal.demo import dtc_command
from dtc_wal.states import TxState
from dtc_wal.testing.log_reading import read_log


def test_demo_rolls_back_the_refused_payment_then_commits(tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = CliRunner().invoke(cli, ["demo", "--log", str(log)])
    assert result.exit_code == 0, result.output
    out = result.output
    # 2PC: refused payment -> nothing kept anywhere; after the top-up -> everything
    assert "insufficient funds" in out
    assert "orders=0 stock=5 wallet=30 emails=0" in out.split("top up")[0].split("->")[-1]
    assert "-> committed   orders=1 stock=3 wallet=40 emails=1" in out
    # the saga compensates, then commits
    assert "-> compensated" in out
    assert "steps: create order, charge, reserve stock, send email" in out
    # the log holds the four transactions, in the states the story says, and is sound
    snapshot = read_log(log)  # in the log's own format, verified
    assert snapshot.problems == []
    states = sorted(t.state.value for t in snapshot.transactions.values())
    assert states == sorted([TxState.ABORTED.value, TxState.COMMITTED.value] * 2)
    assert "dtc show" in out


# --- set-up, tear-down and the footer --------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = str(Path(sys.executable).parent)


def _env(tmp: Path, *, dtc_on_path: bool) -> dict[str, str]:
    """The environment a user runs the demo in: its temporary files under ``tmp``, and the
    interpreter's bin directory (with this installation's ``dtc``) on PATH or not."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != VENV_BIN]
    if dtc_on_path:
        path.insert(0, VENV_BIN)
    return {**os.environ, "TMPDIR": str(tmp), "PATH": os.pathsep.join(path)}


def _demo(tmp: Path, *args: str, dtc_on_path: bool = False) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dtc_wal", "demo", *args],
        capture_output=True,
        text=True,
        env=_env(tmp, dtc_on_path=dtc_on_path),
        cwd=tmp,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _inspect_command(out: str) -> list[str]:
    (line,) = [ln for ln in out.splitlines() if ln.startswith("Inspect it yourself: ")]
    return shlex.split(line.removeprefix("Inspect it yourself: "))


def test_the_demo_removes_its_temporary_log(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = _demo(scratch)
    assert "-> committed" in out
    assert list(scratch.iterdir()) == []  # nothing left behind
    assert "removed" in out and "demo --keep" in out
    assert "Inspect it yourself" not in out  # no command for a log that is gone


@pytest.mark.parametrize("dtc_on_path", [False, True], ids=["no-dtc-on-path", "dtc-on-path"])
def test_keep_keeps_the_log_and_the_printed_command_works(
    tmp_path: Path, dtc_on_path: bool
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = _demo(scratch, "--keep", dtc_on_path=dtc_on_path)
    (kept,) = scratch.iterdir()
    assert kept.name.startswith("dtc-demo-") and f"log at {kept}" in out
    assert f"rm -r {kept}" in out
    command = _inspect_command(out)
    assert command[-3:-1] == ["show", str(kept)]
    if dtc_on_path:
        assert command[0] == "dtc"
    assert ".venv" not in out or ".venv" in sys.executable  # no assumed virtualenv
    shown = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=_env(scratch, dtc_on_path=dtc_on_path),
        cwd=scratch,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert command[-1] in shown.stdout and "committed" in shown.stdout


def test_a_given_log_directory_is_kept_and_no_temporary_one_made(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    log = tmp_path / "demo-log"
    out = _demo(scratch, "--log", str(log))
    assert list(scratch.iterdir()) == []
    assert (log / "data.mdb").is_file()
    assert _inspect_command(out)[-2] == str(log)
    assert "rm -r" not in out  # the user's own directory: not ours to suggest removing


def test_dtc_command_falls_back_to_this_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `dtc` on PATH that another Python's pip installed is not this installation's, and
    with none beside the interpreter the command is `<python> -m dtc_wal`."""
    other = tmp_path / "bin"
    other.mkdir()
    script = other / "dtc"
    script.write_text("#!/opt/another/python3\nprint('another installation')\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(other))
    monkeypatch.chdir(tmp_path)  # paths below the current directory are shown relative
    assert dtc_command() == shlex.quote(str(Path(VENV_BIN) / "dtc"))  # the venv's, not PATH's
    alone = tmp_path / "python with space" / "python3"
    monkeypatch.setattr(sys, "executable", str(alone))
    assert dtc_command() == "'python with space/python3' -m dtc_wal"  # below the cwd


@pytest.mark.slow
def test_dev_py_demo_installs_only_the_package(tmp_path: Path) -> None:
    """`python3 dev.py demo` in a fresh copy of the project: a virtualenv without the test
    or dev extras, no temporary directory left behind, and a second run installs nothing."""
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".*_cache"),
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**_env(scratch, dtc_on_path=False), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(project / "dev.py"), "demo"],
            capture_output=True,
            text=True,
            env=env,
            cwd=scratch,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "-> committed" in done.stdout
        assert list(scratch.iterdir()) == []
    assert "pip install" not in done.stdout  # the second run found everything installed
    python = project / ".venv" / "bin" / "python"
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.lower()
    assert "dtc-wal" in listed and "lmdb" in listed
    for extra in ("pytest", "hypothesis", "transaction", "ruff", "mypy", "psycopg"):
        assert f"{extra}==" not in listed, f"{extra} installed for the demo"
