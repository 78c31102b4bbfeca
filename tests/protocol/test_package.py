"""The protocol core stands alone: no I/O, no clock, no threads, nothing else of dtc_wal
(its records, dtc_wal.protocol.records, are its own);
its public names are exported; its docstring example runs; its benchmark runs."""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest

import dtc_wal.protocol as protocol
from benchmarks import protocol as bench

PACKAGE = Path(protocol.__file__).parent
ALLOWED = {"__future__", "collections", "dataclasses", "enum", "typing"}


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_imports_only_itself_and_pure_stdlib(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside dtc_wal.protocol only
                assert node.level == 1, f"{path.name} reaches out of the package"
                continue
            modules = [node.module or ""]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            assert module.split(".")[0] in ALLOWED, f"{path.name} imports {module}"


def test_every_public_name_is_exported() -> None:
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None
    assert sorted(protocol.__all__) == sorted(set(protocol.__all__))


def test_the_package_docstring_example_runs() -> None:
    result = doctest.testmod(protocol)
    assert result.attempted > 0 and result.failed == 0


def test_the_benchmark_runs_every_path(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transaction")  # the zope anchor; the test extra installs it
    out = bench.main(["--transactions", "20", "--repeat", "2"])
    assert out["paths"]["2pc commit, 3 participants"]["records"] == 3
    assert out["paths"]["2pc commit, 3 participants"]["appends"] == 3
    assert out["paths"]["one-phase commit"]["appends"] == 1
    assert all(p["us_per_tx"] > 0 for p in out["paths"].values())
    assert out["zope_us"] > 0
    assert "machine share / zope commit" in capsys.readouterr().out
