"""``dtc`` on a log in a read-only directory (a copy, a backup, a mounted snapshot).

The log is left by a coordinator SIGKILLed after its commit decision, then made read-only
(directory 0555, files 0444). ``dtc`` runs in a subprocess that cannot write there: as
root, permission bits do not stop writes, so the subprocess runs without the capabilities
that override them (CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, dropped from its bounding
set before exec); as any other user the bits do. Each test first checks that the
subprocess really cannot write the directory, so that it cannot pass by accident.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_registry import crash_command, journal_lines

from dtc_wal.log.lmdb import LmdbLog

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _without_dac_override() -> None:  # runs in the child, between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def unprivileged(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``args`` as this user, but unable to write what permission bits forbid."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_without_dac_override if os.geteuid() == 0 else None,
    )


def dtc(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return unprivileged([sys.executable, "-m", "dtc_wal", *(str(a) for a in args)], cwd)


def digest(log: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(log.iterdir())}


@pytest.fixture
def readonly_log(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A crashed coordinator's log, read-only; made writable again afterwards."""
    log, journal = tmp_path / "log", tmp_path / "journal"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        crash_command(log, journal),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    txid = proc.stdout.strip()
    for path in log.iterdir():
        path.chmod(0o444)
    log.chmod(0o555)
    probe = unprivileged([sys.executable, "-c", f"open({str(log / 'probe')!r}, 'w')"], tmp_path)
    if probe.returncode == 0:
        (log / "probe").unlink()
        pytest.skip("cannot run a process that permission bits stop from writing here")
    assert "PermissionError" in probe.stderr, probe.stderr
    yield log, journal, txid
    log.chmod(0o755)
    for path in log.iterdir():
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_read_only_commands_read_a_read_only_log_and_warn(
    readonly_log: tuple[Path, Path, str], tmp_path: Path
) -> None:
    log, journal, txid = readonly_log
    before = digest(log)
    for args in (
        ["status"],
        ["list"],
        ["show", txid[:8]],
        ["verify"],
        ["export"],
        ["recover", "--registry", "cli_registry:registry", "--dry-run"],
        ["compact", "--dry-run"],
    ):
        result = dtc(args[0], log, *args[1:], cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr.startswith(f"warning: {log} is read-only for this user, so it is ")
        assert "a process writing to it cannot be ruled out" in result.stderr
        assert "torn view" in result.stderr
        assert result.stdout, args
    status = dtc("status", log, cwd=tmp_path).stdout
    assert "awaiting recovery  2 participant(s) in 1 transaction(s)" in status
    assert f"transaction        {txid}" in dtc("show", log, txid, cwd=tmp_path).stdout
    verify = dtc("verify", log, cwd=tmp_path).stdout
    assert verify.startswith("ok: checked 2 record(s), 1 transaction(s) (1 unfinished)")
    exported = dtc("export", log, cwd=tmp_path).stdout.splitlines()
    assert [(r["txid"], r["seq"]) for r in map(json.loads, exported)] == [(txid, 0), (txid, 1)]
    assert digest(log) == before  # not a byte changed, no lock file created
    assert journal_lines(journal, "payment") == [f"prepare {txid}"]  # the dry run called nobody


def test_commands_that_write_say_what_to_do(
    readonly_log: tuple[Path, Path, str], tmp_path: Path
) -> None:
    log, journal, txid = readonly_log
    before = digest(log)
    for args in (
        ["recover", "--registry", "cli_registry:registry"],
        ["resolve", txid, "--commit", "--reason", "by hand"],
        ["compact", "--keep", "0s"],
        ["repair", txid, "--force", "--backup-to", tmp_path / "evidence"],
    ):
        result = dtc(args[0], log, *args[1:], cwd=tmp_path)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stderr.startswith(f"Error: {log} is read-only for this user (")
        assert f"`dtc {args[0]}` writes to the log" in result.stderr
        assert f"`dtc backup {log} --to DIR`" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert digest(log) == before
    assert not (tmp_path / "evidence").exists()
    assert journal_lines(journal, "payment") == [f"prepare {txid}"]  # nobody was called


def test_backup_copies_a_read_only_log_to_where_recovery_can_run(
    readonly_log: tuple[Path, Path, str], tmp_path: Path
) -> None:
    log, journal, txid = readonly_log
    before = digest(log)
    copy = tmp_path / "copy"
    backup = dtc("backup", log, "--to", copy, "--json", cwd=tmp_path)
    assert backup.returncode == 0, backup.stderr
    assert "copied without taking its directory lock" in backup.stderr
    assert json.loads(backup.stdout)["locked"] is False
    assert (copy / "data.mdb").read_bytes() == (log / "data.mdb").read_bytes()
    assert digest(log) == before
    recover = dtc("recover", copy, "--registry", "cli_registry:registry", cwd=tmp_path)
    assert recover.returncode == 0, recover.stderr
    assert recover.stderr == ""  # the copy is writable: no warning
    assert f"{txid}  decided-commit: re-send commit -> finished" in recover.stdout
    assert journal_lines(journal, "payment") == [f"prepare {txid}", f"commit {txid}"]


def test_the_library_reads_a_read_only_log_without_the_lock(
    readonly_log: tuple[Path, Path, str], tmp_path: Path
) -> None:
    log, _, txid = readonly_log
    script = (
        "import sys; from dtc_wal.log.lmdb import LmdbLog\n"
        "with LmdbLog(sys.argv[1], readonly=True) as log:\n"
        "    print(log.lockless, *[t.txid for t in log.unfinished()])\n"
    )
    result = unprivileged([sys.executable, "-c", script, str(log)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", txid]
    if os.geteuid() == 0:  # this process can write there: the usual reader, with the lock
        with LmdbLog(log, readonly=True) as reader:
            assert not reader.lockless


def test_an_unreadable_log_says_so(readonly_log: tuple[Path, Path, str], tmp_path: Path) -> None:
    log, _, _ = readonly_log
    (log / "data.mdb").chmod(0)
    result = dtc("status", log, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: cannot read {log / 'data.mdb'}: permission denied; run as a user who can read "
        "the log (the coordinator's), or read a copy of it"
    )
