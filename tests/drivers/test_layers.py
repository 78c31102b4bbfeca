"""design.md's arrows point down: a part may use the parts below it, never above. Checked
for the redesign's parts: the drivers run machines for the facades above them; the log
knows records and framing, not the protocol or anything that drives it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dtc_wal

ROOT = Path(dtc_wal.__file__).parent
ABOVE = {
    "drivers": {"coordinator", "cli", "aio", "http", "maintenance"},
    "log": {"protocol", "drivers", "coordinator", "recovery", "cli", "aio", "http", "maintenance"},
}
FILES = [(part, path) for part in ABOVE for path in sorted((ROOT / part).rglob("*.py"))]


def _imported(path: Path) -> list[str]:
    """Absolute dtc_wal module names ``path`` imports."""
    package = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.append(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [n for n in names if n.startswith("dtc_wal.")]


@pytest.mark.parametrize("part, path", FILES, ids=lambda v: getattr(v, "name", v))
def test_nothing_above_is_imported(part: str, path: Path) -> None:
    for name in _imported(path):
        if part == "log" and name == "dtc_wal.protocol.records":
            continue  # the records it stores: plain values, no protocol rules
        assert name.split(".")[1] not in ABOVE[part], f"{path.relative_to(ROOT)} imports {name}"
