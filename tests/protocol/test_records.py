"""Format-2 record values (dtc_wal.protocol.records): immutable, closed over the names the
log stores, standard library only."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from dtc_wal.protocol import records as r


def test_records_are_frozen_values() -> None:
    opened = r.Opened("tx-1", 1.5, r.Mode.TWO_PHASE, (r.MemberSpec("a", "inv", {"sku": "A1"}),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.txid = "tx-2"  # type: ignore[misc]
    assert opened == r.Opened(
        "tx-1", 1.5, r.Mode.TWO_PHASE, (r.MemberSpec("a", "inv", {"sku": "A1"}),)
    )
    assert r.Ended("tx-1", 2.0) != r.Ended("tx-1", 2.0, ((0, r.MemberState.COMMITTED),))


def test_every_record_type_has_txid_and_time_first() -> None:
    kinds = typing.get_args(r.Record)
    assert len(kinds) == 7
    for kind in kinds:
        names = [f.name for f in dataclasses.fields(kind)]
        assert names[:2] == ["txid", "at"], kind


def test_the_vocabulary_imports_only_the_standard_library() -> None:
    """Both the protocol (above the log) and the log's codec import it: it may import
    neither, nor anything that does I/O."""
    import ast
    from pathlib import Path

    allowed = {"__future__", "collections", "dataclasses", "enum", "typing"}
    for node in ast.walk(ast.parse(Path(r.__file__).read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and (node.module or "").split(".")[0] in allowed, node.module
        elif isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] in allowed for a in node.names), node.names
