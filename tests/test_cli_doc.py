"""docs/cli.md against the ``dtc`` command itself: its command table names every command
and only options the commands have, and its session shows no format-1 output."""

from __future__ import annotations

import re
from pathlib import Path

import click

from dtc_wal.cli import cli

DOC = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")


def _table_rows() -> dict[str, str]:
    """The command table: command name -> its synopsis (the first cell)."""
    rows = {}
    for line in DOC.splitlines():
        found = re.match(r"\| `dtc (\w+) ([^|]*(?:\\\|[^|]*)*)` \|", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def _options(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return names


def test_the_table_lists_every_command() -> None:
    assert isinstance(cli, click.Group)
    assert set(_table_rows()) == set(cli.commands)


def test_the_table_names_only_options_the_commands_have() -> None:
    for name, synopsis in _table_rows().items():
        named = set(re.findall(r"--[a-z][a-z-]*", synopsis))
        missing = named - _options(cli.commands[name])
        assert not missing, f"docs/cli.md shows `dtc {name}` with {missing}, which it lacks"


def test_the_session_shows_format_2_records_only() -> None:
    """Every timeline row of a `dtc show` in the session is a format-2 record (or damage),
    and the session shows each kind of record it explains."""
    session = DOC.split("## A session", 1)[1].split("## Logs from dtc-wal 0.1", 1)[0]
    consoles = "\n".join(re.findall(r"```console\n(.*?)```", session, flags=re.S))
    assert "  LSN  " not in consoles
    headers = re.findall(r"^  (\w+) +TIME +SINCE BEGIN +RECORD", consoles, flags=re.M)
    assert headers and set(headers) == {"SEQ"}
    rows = re.findall(r"^  \d+ +(?:\S+Z|\?) +(?:[+]\S+|\?) +(\S+)", consoles, flags=re.M)
    kinds = {"opened", "step-done", "decided", "failed", "resolved", "acked", "ended", "DAMAGED"}
    assert rows and set(rows) <= kinds, set(rows) - kinds
    assert {"opened", "decided", "failed", "resolved", "acked", "ended", "DAMAGED"} <= set(rows)
