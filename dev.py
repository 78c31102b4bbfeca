#!/usr/bin/env python3
"""The project's two commands, each doing its own set-up (a virtualenv in .venv).

    python3 dev.py demo     run the e-commerce demo (2PC + saga, a failure, then success);
                            --keep keeps its log to look at with dtc, --log DIR writes it there
    python3 dev.py test     lint (ruff), type-check (mypy --strict) and run the whole suite

Extra arguments after ``test`` go to pytest (e.g. ``python3 dev.py test -k wal``). Needs only
python3 and the package registries; PostgreSQL server binaries are installed with apt-get
when missing and this runs as root (the PostgreSQL tests need them).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".dtc-installed"


def run(*cmd: str | Path, check: bool = True, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check, env=env).returncode


def ensure_venv(extras: str, upgrade_pip: bool = True) -> None:
    """Create .venv and install the project with ``extras`` (comma-separated, may be empty);
    nothing to do when those are installed for this pyproject.toml already (the stamp lists
    what is), so `demo` after `test` installs nothing."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    wanted = {e for e in extras.split(",") if e}
    installed: set[str] = set()
    if STAMP.exists() and PY.exists():
        stamp_digest, _, listed = STAMP.read_text().partition("\n")
        if stamp_digest == digest:
            installed = {e for e in listed.split(",") if e}
            if wanted <= installed:
                return
    if not PY.exists():
        print(f"creating virtualenv {VENV.relative_to(ROOT)}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    if upgrade_pip:
        run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    wanted |= installed  # keep what is there: `test` after `demo` adds, never removes
    target = f".[{','.join(sorted(wanted))}]" if wanted else "."
    run(PY, "-m", "pip", "install", "--quiet", "-e", target)
    STAMP.write_text(f"{digest}\n{','.join(sorted(wanted))}")


def postgres_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def ensure_postgres() -> None:
    """The PostgreSQL tests run a real server; install Debian's when it is missing."""
    if postgres_bindir() is not None:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("PostgreSQL server binaries not found and cannot install them (not root/apt).")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run("apt-get", "update", "-qq", check=False, env=env)
    run("apt-get", "install", "-y", "-qq", "postgresql", check=False, env=env)


def demo(args: list[str]) -> int:
    """The demo needs the package alone: no test or dev extras, no pip upgrade. It runs in
    the caller's directory, so the commands it prints work where they are typed."""
    ensure_venv("", upgrade_pip=False)
    cmd = [str(PY), "-m", "dtc_wal", "demo", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=False).returncode


def test(args: list[str]) -> int:
    ensure_venv("test,dev,postgres")
    ensure_postgres()
    for step in (
        (PY, "-m", "ruff", "check", "dtc_wal", "tests", "benchmarks", "examples"),
        (PY, "-m", "ruff", "format", "--check", "dtc_wal", "tests", "benchmarks", "examples"),
        (PY, "-m", "mypy", "dtc_wal"),
    ):
        if run(*step, check=False) != 0:
            print("lint/type check failed: fix the above (ruff format dtc_wal fixes formatting)")
            return 1
    # The venv's bin first, so tests that run the installed `dtc` find it.
    env = dict(os.environ, PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    code = run(PY, "-m", "pytest", *args, check=False, env=env)
    if code == 5:
        print("pytest collected no tests: the suite is missing or the filter matched nothing")
        return 1
    return code


def main(argv: list[str]) -> int:
    commands = {"demo": demo, "test": test}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
