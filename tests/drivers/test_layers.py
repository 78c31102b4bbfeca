"""design.md's arrows point down: the drivers run machines for the facades above them and
must not reach up into them (dtc_wal.coordinator, dtc_wal.cli)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dtc_wal.drivers as drivers

ABOVE = ("coordinator", "cli", "aio", "http")


@pytest.mark.parametrize(
    "path", sorted(Path(drivers.__file__).parent.glob("*.py")), ids=lambda p: p.name
)
def test_the_drivers_import_nothing_above_them(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            name = node.module if node.level == 0 else "dtc_wal." + node.module
            if node.level == 1:
                continue  # inside dtc_wal.drivers
            parts = name.split(".")
            assert not (parts[0] == "dtc_wal" and len(parts) > 1 and parts[1] in ABOVE), (
                f"{path.name} imports {name}"
            )
