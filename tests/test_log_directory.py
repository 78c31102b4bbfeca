"""Opening a log directory: every refusal says what is in the way and what to do.

A second open in the same process names this process (not "another live coordinator"), a
path that is a file says so, a parent that is a file is named, missing parents are created;
nothing already logged is lost and the first holder keeps working.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import Journal, RecordingParticipant

from dtc_wal import TransactionCoordinator, TxState
from dtc_wal import errors as E
from dtc_wal.log.lmdb import LmdbLog


def test_a_second_open_in_this_process_says_so(log_dir: Path, journal: Journal) -> None:
    with TransactionCoordinator(log_dir, recovery_interval=None) as first:
        txid = first.begin_transaction()
        first.enlist_participant(txid, RecordingParticipant("a", journal))
        first.commit_transaction(txid)
        for reopen in (
            lambda: TransactionCoordinator(log_dir),
            lambda: LmdbLog(log_dir),
        ):
            with pytest.raises(E.LogLockedError) as info:
                reopen()
            message = str(info.value)
            assert message.startswith(f"log {log_dir} is held by this process (pid {os.getpid()}")
            assert "already open here" in message
            assert "close that one first" in message and "reuse it" in message
            assert "another live coordinator" not in message
        assert first.state(txid) is TxState.COMMITTED  # the holder is undisturbed
        again = first.begin_transaction()
        first.enlist_participant(again, RecordingParticipant("b", journal))
        first.commit_transaction(again)
    with TransactionCoordinator(log_dir) as reopened:
        assert reopened.state(again) is TxState.COMMITTED


def test_a_log_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "dtc-log"
    path.write_text("I am a file\n")
    with pytest.raises(E.LogError) as info:
        TransactionCoordinator(path)
    message = str(info.value)
    assert message.startswith(f"{path} is a file, not a log directory")
    assert "Errno" not in message
    assert path.read_text() == "I am a file\n"  # left alone


def test_a_path_to_a_file_inside_a_log_points_at_the_log(log_dir: Path) -> None:
    LmdbLog(log_dir).close()
    for name in ("data.mdb", "coordinator.lock"):
        with pytest.raises(E.LogError, match=f"give its directory, {log_dir}"):
            TransactionCoordinator(log_dir / name)
    with TransactionCoordinator(log_dir):  # the log itself is intact
        pass


def test_a_parent_that_is_a_file_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "var"
    blocker.write_text("")
    path = blocker / "lib" / "dtc-log"
    for opener in (TransactionCoordinator, LmdbLog):
        with pytest.raises(E.LogError) as info:
            opener(path)
        message = str(info.value)
        assert f"cannot create the log directory {path}: {blocker} is a file" in message
        assert "Errno" not in message


def test_missing_parents_are_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "dtc-log"
    with TransactionCoordinator(path) as coord:
        txid = coord.begin_transaction()
        coord.register_participant(txid, "step", lambda t, d: None, lambda t: None)
        coord.commit_transaction(txid)
    assert (path / "data.mdb").is_file()


def test_a_log_path_that_is_no_path() -> None:
    with pytest.raises(E.InvalidOptionError, match="log path is empty"):
        LmdbLog("")
    with pytest.raises(E.InvalidOptionError, match="not NoneType") as info:
        TransactionCoordinator(None)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)


def test_a_broken_symlink_is_not_taken_for_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "dtc-log"
    path.symlink_to(tmp_path / "gone")
    with pytest.raises(E.LogError, match="exists but is not a directory"):
        TransactionCoordinator(path)
