"""The ``dtc`` group: help texts, ``--debug``, error translation, durations, progress bars."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_registry import populate
from click.testing import CliRunner

from dtc_wal.cli import cli, progress
from dtc_wal.cli.durations import parse_duration
from dtc_wal.cli.errors import EXIT_LOCKED, translate
from dtc_wal.cli.output import format_age, format_bytes, format_time, to_jsonable
from dtc_wal.errors import LogError, LogLockedError, UnknownTransactionError

COMMANDS = ["status", "list", "show", "verify", "recover", "resolve", "compact", "export"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert f"Usage: cli {command}" in result.stdout
    assert "Examples:" in result.stdout
    assert f"dtc {command} /var/lib/shop/dtc-log" in result.stdout


def test_group_help_lists_commands_and_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in [*COMMANDS, "demo"]:
        assert f"  {command} " in result.stdout
    assert "3  a live coordinator holds the log" in result.stdout


def test_short_help_option() -> None:
    assert CliRunner().invoke(cli, ["status", "-h"]).stdout.startswith("Usage:")


def test_errors_are_one_line_without_debug(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["status", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: no log at")
    assert "Traceback" not in result.output


def test_debug_keeps_the_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--debug", "status", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert isinstance(result.exception, LogError)
    assert "no log at" in str(result.exception)


def test_debug_shows_why_a_registry_import_failed(tmp_path: Path) -> None:
    populate(tmp_path / "log", tmp_path / "j")
    result = CliRunner().invoke(
        cli, ["--debug", "recover", str(tmp_path / "log"), "--registry", "nope_xyz:registry"]
    )
    assert isinstance(result.exception, ValueError)
    assert isinstance(result.exception.__cause__, ModuleNotFoundError)


def test_translate_maps_library_errors_and_leaves_bugs() -> None:
    locked = translate(LogLockedError("log /x is held by another live coordinator\n(pid 1)"))
    assert locked is not None and locked.exit_code == EXIT_LOCKED
    assert locked.message == "log /x is held by another live coordinator (pid 1)"
    unknown = translate(UnknownTransactionError("tx-9"))
    assert unknown is not None and unknown.exit_code == 1
    assert unknown.message.startswith("unknown transaction 'tx-9'")
    assert translate(PermissionError(13, "Permission denied", "/x")) is not None
    assert translate(KeyError("a bug")) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("3d", 259200),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        (" 2D ", 172800),
        ("0s", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "10 m", "1h 30m", "-1h", "1y"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_output_formats() -> None:
    assert format_time(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"
    assert format_time(None) == "-"
    assert [format_age(s) for s in (0, 0.25, 4.21, 750, 7500, 300000)] == [
        "0s",
        "250ms",
        "4.2s",
        "12m30s",
        "2h05m",
        "3d11h",
    ]
    assert [format_bytes(n) for n in (512, 2048, 5 * 1024 * 1024)] == [
        "512 B",
        "2.0 KiB",
        "5.0 MiB",
    ]
    assert to_jsonable({"a": b"\xff", 1: (1, 2), b"k": None}) == {
        "a": {"$base64": "/w=="},
        "1": [1, 2],
        "k": None,
    }


def test_progress_bar_only_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(tmp_path / "log", tmp_path / "j")
    piped = CliRunner().invoke(cli, ["verify", str(tmp_path / "log")])
    assert piped.exit_code == 0
    assert "verifying" not in piped.output
    monkeypatch.setattr(progress, "is_terminal", lambda: True)
    shown = CliRunner().invoke(cli, ["verify", str(tmp_path / "log")])
    assert shown.exit_code == 0
    # format 2 checks transaction by transaction (click draws, or off a tty labels, the bar)
    assert "verifying transactions" in shown.stderr
    assert shown.stdout.startswith("ok: checked")


def test_progress_update_tracks_done_and_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "is_terminal", lambda: True)
    with progress.progress_bar("working") as update:
        update(3, 10)
        update(10, 10)
    with progress.progress_bar("quiet", enabled=False) as update:
        assert update(1, 2) is None
