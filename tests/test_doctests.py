"""The runnable examples in public docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "dtc_wal",
    "dtc_wal.coordinator.facade",
    "dtc_wal.import_paths",
    "dtc_wal.log_values",
    "dtc_wal.registry",
    "dtc_wal.testing.crash_at",
    "dtc_wal.testing.participants",
    "dtc_wal.log.lmdb.backend",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
    if name != "dtc_wal":
        assert result.attempted > 0
