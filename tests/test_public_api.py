"""The public surface, pinned (trio ``_tests/test_exports.py`` style): changing it is a
decision, so it changes this test too."""

from __future__ import annotations

import importlib
import inspect
import logging
import types
from pathlib import Path

import pytest

import dtc_wal

PUBLIC = {
    "Clock",
    "CommitIncompleteError",
    "DtcError",
    "ManualClock",
    "Mode",
    "NotRecoverableWarning",
    "Outcome",
    "Participant",
    "ParticipantRegistry",
    "MemberState",
    "ParticipantView",
    "SagaStep",
    "SystemClock",
    "TransactionAborted",
    "TransactionCoordinator",
    "TransactionView",
    "TransientError",
    "TxState",
    "Vote",
    "VoteNo",
    "READ_ONLY",
    "CommitHandle",
    "CoordinatorOptions",
    "CoordinatorStats",
}

SUBMODULES = [
    "dtc_wal.clock",
    "dtc_wal.errors",
    "dtc_wal.participant",
    "dtc_wal.registry",
    "dtc_wal.states",
    "dtc_wal.coordinator",
    "dtc_wal.drivers",
    "dtc_wal.log",
    "dtc_wal.log.lmdb",
    "dtc_wal.protocol",
    "dtc_wal.recovery",
]


def test_all_is_pinned() -> None:
    assert set(dtc_wal.__all__) == PUBLIC
    assert len(dtc_wal.__all__) == len(set(dtc_wal.__all__))
    assert list(dtc_wal.__all__) == sorted(dtc_wal.__all__)


def test_every_exported_name_resolves() -> None:
    for name in dtc_wal.__all__:
        assert getattr(dtc_wal, name) is not None


def test_no_public_name_outside_all() -> None:
    """Everything importable from ``dtc_wal`` without an underscore is either in
    ``__all__`` or a subpackage/module (trio's rule)."""
    stray = {
        name
        for name, value in vars(dtc_wal).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in dtc_wal.__all__
        and name != "annotations"  # from __future__ import annotations
    }
    assert stray == set()


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from dtc_wal import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == PUBLIC


@pytest.mark.parametrize("module", SUBMODULES)
def test_submodule_all_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    assert names is not None, f"{module} has no __all__"
    for name in names:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"


def test_exports_are_the_real_objects() -> None:
    from dtc_wal.clock import ManualClock
    from dtc_wal.coordinator import TransactionCoordinator
    from dtc_wal.errors import CommitIncompleteError, DtcError, TransactionAborted
    from dtc_wal.registry import ParticipantRegistry
    from dtc_wal.states import TxState

    assert dtc_wal.TransactionCoordinator is TransactionCoordinator
    assert dtc_wal.ParticipantRegistry is ParticipantRegistry
    assert dtc_wal.DtcError is DtcError
    assert dtc_wal.TransactionAborted is TransactionAborted
    assert dtc_wal.CommitIncompleteError is CommitIncompleteError
    assert dtc_wal.ManualClock is ManualClock
    assert dtc_wal.TxState is TxState


def test_version() -> None:
    assert isinstance(dtc_wal.__version__, str)
    assert dtc_wal.__version__.count(".") >= 2


def test_py_typed_is_shipped() -> None:
    assert (Path(dtc_wal.__file__).parent / "py.typed").is_file()


def test_library_adds_only_a_null_handler() -> None:
    logger = logging.getLogger("dtc_wal")
    assert len(logger.handlers) == 1
    assert type(logger.handlers[0]) is logging.NullHandler
    assert logger.level == logging.NOTSET  # the application decides the level
    assert logger.propagate
    for child in ("dtc_wal.log", "dtc_wal.coordinator", "dtc_wal.drivers"):
        assert logging.getLogger(child).handlers == []


def test_documented_defaults() -> None:
    """Issue 2: prepare timeout 5 s, max_retries 3; design: fully synced by default."""
    defaults = dtc_wal.CoordinatorOptions()
    assert defaults.prepare_timeout == 5.0
    assert defaults.max_retries == 3
    assert defaults.sync is True
    keywords = inspect.signature(dtc_wal.TransactionCoordinator).parameters
    assert keywords["options"].default is None  # no options given: these defaults


def test_seed_signatures_take_positional_arguments() -> None:
    coord = dtc_wal.TransactionCoordinator
    register = list(inspect.signature(coord.register_participant).parameters)
    assert register[:5] == ["self", "txid", "service_name", "commit_function", "rollback_function"]
    enlist = list(inspect.signature(coord.enlist_participant).parameters)
    assert enlist[:3] == ["self", "txid", "participant"]
    commit = inspect.signature(coord.commit_transaction).parameters
    assert list(commit)[:2] == ["self", "txid"]
    assert commit["data"].default is None


def test_deprecated_names_warn_and_still_resolve() -> None:
    """One name per concept: ParticipantState is MemberState's old name and RecordType is
    format 1's; both still resolve for one release, with a DeprecationWarning saying what
    to use instead."""
    with pytest.warns(DeprecationWarning, match="use dtc_wal.MemberState"):
        old = dtc_wal.ParticipantState
    assert old is dtc_wal.MemberState
    with pytest.warns(DeprecationWarning, match="record classes"):
        record_type = dtc_wal.RecordType
    assert record_type.BEGUN == 1
    with pytest.raises(AttributeError):
        dtc_wal.NoSuchName  # noqa: B018
    assert dtc_wal.READ_ONLY is dtc_wal.Vote.READ_ONLY  # one enum member, two spellings
