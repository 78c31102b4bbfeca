"""Every bad input raises a ``dtc_wal.errors`` exception (README, docs/protocol.md "Errors").

An AST scan keeps builtin exceptions out of the package's ``raise`` statements, except a
short explicit list (each with its reason) and raises caught by their own ``try``; then the
cases issue 11 named, and the option checks, each raise their specific error.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Journal, RecordingParticipant

import dtc_wal
from dtc_wal import ManualClock, ParticipantRegistry, TransactionCoordinator, TxState
from dtc_wal import errors as E
from dtc_wal.cli.durations import parse_duration
from dtc_wal.cli.registry_spec import load_registry
from dtc_wal.drivers.calls import CallPolicy
from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.participants.barrier import IdempotencyBarrier
from dtc_wal.protocol import Ended, MemberState, Mode, Opened, Outcome
from dtc_wal.testing import points
from dtc_wal.testing.participants import FailTimes

PACKAGE = Path(dtc_wal.__file__).resolve().parent
DOCS = PACKAGE.parent / "docs"

ALLOWED = {
    ("cli/output.py", "AssertionError"): "an unreachable branch, not input",
    ("drivers/handle.py", "TimeoutError"): "CommitHandle.wait(timeout), documented",
    ("states.py", "AttributeError"): "a module __getattr__ for a name it does not have",
    ("participants/postgres/__init__.py", "ImportError"): "the postgres extra is missing",
    ("testing/participants.py", "ConnectionError"): "an injected participant failure",
    ("testing/participants.py", "TimeoutError"): "an injected participant hang",
    ("testing/durable_participants.py", "ConnectionError"): "an injected failure",
    ("testing/durable_participants.py", "RuntimeError"): "an injected failure",
    ("testing/durable_store.py", "ConnectionError"): "an injected unreachable service",
    ("testing/durable_store.py", "RuntimeError"): "a protocol violation detected",
    ("testing/harness.py", "RuntimeError"): "the crash harness's child failed",
    ("testing/harness.py", "TimeoutError"): "the crash harness's child hung",
    ("testing/workload.py", "SystemExit"): "the workload process's exit",
    ("import_paths.py", "ImportError"): "a logged import path that no longer imports: "
    "recovery's rebuild catches it and reports the step in doubt",
    ("import_paths.py", "TypeError"): "a logged import path naming a non-callable (the same)",
    ("participant.py", "ImportError"): "a log entry without import paths (the same)",
}


def _builtin_exception(name: str) -> type[BaseException] | None:
    found = getattr(builtins, name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else None


def _caught_names(handler: ast.ExceptHandler) -> set[str]:
    kinds = handler.type
    items = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds] if kinds else []
    return {k.id for k in items if isinstance(k, ast.Name)}


def _reraises(handler: ast.ExceptHandler) -> bool:
    return any(
        isinstance(n, ast.Raise)
        and (n.exc is None or (isinstance(n.exc, ast.Name) and n.exc.id == handler.name))
        for n in ast.walk(handler)
    )


def _caught_locally(raised: type[BaseException], stack: list[ast.AST]) -> bool:
    """True when an enclosing ``try`` of the same function catches the raise and turns it
    into something else (a handler that re-raises it does not count)."""
    for parent, child in itertools.pairwise(stack):
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                caught = {_builtin_exception(n) for n in _caught_names(handler)}
                if any(c is not None and issubclass(raised, c) for c in caught):
                    return not _reraises(handler)
    return False


def _builtin_raises() -> Iterator[tuple[str, int, str, bool]]:
    """``(path, line, exception, caught_locally)`` for every raise of a builtin class."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))

        def walk(node: ast.AST, stack: list[ast.AST]) -> Iterator[tuple[ast.Raise, list[ast.AST]]]:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                stack = []  # a try outside the function does not catch inside it
            stack = [*stack, node]
            if isinstance(node, ast.Raise):
                yield node, stack
            for child in ast.iter_child_nodes(node):
                yield from walk(child, stack)

        for node, stack in walk(tree, []):
            name = _raised_name(node)
            raised = _builtin_exception(name) if name else None
            if raised is not None:
                where = path.relative_to(PACKAGE).as_posix()
                yield where, node.lineno, name or "", _caught_locally(raised, stack)


def test_the_package_raises_no_builtin_exception_for_bad_input() -> None:
    found = [(p, line, name) for p, line, name, caught in _builtin_raises() if not caught]
    unexpected = [f"{p}:{line}: raise {n}" for p, line, n in found if (p, n) not in ALLOWED]
    assert not unexpected, (
        "raise a dtc_wal.errors class (InvalidOptionError, InvalidFactoryError, ...) for bad "
        "input, or add the case to ALLOWED with its reason:\n" + "\n".join(unexpected)
    )
    stale = set(ALLOWED) - {(p, n) for p, _, n in found}
    assert not stale, f"ALLOWED lists raises that are gone: {sorted(stale)}"


def test_the_scan_sees_what_it_must_refuse() -> None:
    """The scanner itself: a bare raise is found, a locally caught one is not."""
    tree = ast.parse(
        "def f(x):\n"
        "    if not x:\n"
        "        raise ValueError('bad')\n"
        "    try:\n"
        "        raise TypeError('inner')\n"
        "    except (TypeError, KeyError):\n"
        "        pass\n"
        "    try:\n"
        "        raise KeyError('passed on')\n"
        "    except KeyError:\n"
        "        raise\n"
    )
    raises = [n for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    assert [_raised_name(n) for n in raises] == ["ValueError", "TypeError", "KeyError", None]
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    guard, attempt, passing = function.body
    assert isinstance(guard, ast.If)
    assert isinstance(attempt, ast.Try) and isinstance(passing, ast.Try)
    assert not _caught_locally(ValueError, [function, guard, guard.body[0]])
    assert _caught_locally(TypeError, [function, attempt, attempt.body[0]])
    assert not _caught_locally(KeyError, [function, passing, passing.body[0]])


def test_every_error_is_exported_and_documented() -> None:
    text = (DOCS / "protocol.md").read_text()
    section = text[text.index("## Errors") :]
    missing = [name for name in E.__all__ if name != "DtcError" and f"`{name}`" not in section]
    assert not missing, f"docs/protocol.md 'Errors' does not list {missing}"
    for name in ("InvalidOptionError", "InvalidFactoryError"):
        cls = getattr(E, name)
        assert issubclass(cls, E.DtcError) and issubclass(cls, ValueError | TypeError)
        assert issubclass(cls, ValueError) and issubclass(cls, TypeError)


# --- the registry -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", None, 5, b"inventory"], ids=["empty", "None", "int", "bytes"])
def test_registry_refuses_a_bad_name(name: Any) -> None:
    registry = ParticipantRegistry()
    with pytest.raises(E.InvalidFactoryError, match="name is a non-empty str") as info:
        registry.register(name, lambda **_: None)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    with pytest.raises(E.InvalidFactoryError, match="resource name is a non-empty str"):
        registry.register_resource(name, lambda: None)
    with pytest.raises(E.InvalidFactoryError):
        registry.factory(name)(lambda **_: None)
    assert len(registry) == 0 and registry.resources() == {}


def test_registry_refuses_the_name_the_log_reserves_for_import_paths() -> None:
    registry = ParticipantRegistry()
    with pytest.raises(E.InvalidFactoryError, match="'dtc_wal:callables' is reserved"):
        registry.register("dtc_wal:callables", lambda **_: None)
    with pytest.raises(E.InvalidFactoryError, match="is reserved"):
        registry.register_functions("dtc_wal:callables", print, print)
    assert len(registry) == 0


def test_registry_refuses_a_factory_that_is_not_callable() -> None:
    registry = ParticipantRegistry()
    with pytest.raises(E.InvalidFactoryError, match="'inventory' is not callable"):
        registry.register("inventory", "make_inventory")  # type: ignore[arg-type]
    with pytest.raises(E.InvalidFactoryError, match="'pg' is not callable"):
        registry.register_resource("pg", None)  # type: ignore[arg-type]
    assert "inventory" not in registry and registry.resources() == {}


def test_registry_create_refuses_params_that_cannot_be_keywords() -> None:
    registry = ParticipantRegistry()
    registry.register("inventory", lambda **params: params)
    with pytest.raises(E.UnencodableDataError, match="must be a mapping"):
        registry.create("inventory", [("sku", "A1")])  # type: ignore[arg-type]
    with pytest.raises(E.UnencodableDataError, match=r"non-str keys \[1\]"):
        registry.create("inventory", {1: "A1"})
    with pytest.raises(E.UnknownFactoryError, match="registered: inventory"):
        registry.create(["inventory"])  # type: ignore[arg-type]
    assert registry.create("inventory", {"sku": "A1"}) == {"sku": "A1"}


# --- coordinator options ------------------------------------------------------------------

BAD_OPTIONS = [
    ("prepare_timeout", 0),
    ("prepare_timeout", "5"),
    ("phase2_timeout", -1),
    ("phase2_timeout", float("nan")),
    ("max_retries", -1),
    ("max_retries", 1.5),
    ("backoff_initial", -0.1),
    ("backoff_max", "2"),
    ("jitter", None),
    ("transient_errors", (ConnectionError, "TimeoutError")),
    ("transient_errors", ConnectionError),
    ("max_workers", 0),
    ("map_size", 0),
    ("max_map_size", -1),
    ("sync", "no"),
    ("log_writer", "threads"),
    ("clock", object()),
    ("registry", {"inventory": print}),
    ("recover", None),
    ("recovery_interval", 0),
    ("recovery_backoff_max", 0),
    ("recovery_workers", 0),
    ("zombie_timeout", -5),
    ("inline_threshold", -0.001),
    ("one_phase", 1),
    ("max_data_bytes", 0),
]


@pytest.mark.parametrize(
    ("option", "value"), BAD_OPTIONS, ids=[f"{o}={v!r}" for o, v in BAD_OPTIONS]
)
def test_a_bad_coordinator_option_is_refused_by_name(
    log_dir: Path, option: str, value: object
) -> None:
    with pytest.raises(E.InvalidOptionError, match=f"^{option} must be ") as info:
        TransactionCoordinator(log_dir, **{option: value})  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert repr(value) in str(info.value) or type(value).__name__ in str(info.value)
    with TransactionCoordinator(log_dir):  # a refused option left nothing open
        pass


def test_good_option_values_still_open(log_dir: Path) -> None:
    with TransactionCoordinator(
        log_dir,
        prepare_timeout=None,
        phase2_timeout=0.5,
        max_retries=0,
        backoff_initial=0,
        jitter=0.0,
        transient_errors=(),
        recovery_interval=None,
        zombie_timeout=None,
        inline_threshold=None,
        clock=ManualClock(),
        sync=False,
        one_phase=False,
    ) as coord:
        assert coord.stats().recovery_passes == 1


def test_call_policy_and_log_options(log_dir: Path) -> None:
    with pytest.raises(E.InvalidOptionError, match="max_retries must be an int >= 0"):
        CallPolicy(max_retries=-1)
    with pytest.raises(E.InvalidOptionError, match="log_writer must be 'caller' or 'thread'"):
        TransactionCoordinator(log_dir, log_writer="leader")  # type: ignore[arg-type]
    # format 2 has no writer thread: the format-1 option is refused, naming why
    with pytest.raises(E.InvalidOptionError, match="log_writer='thread' is a format-1 option"):
        TransactionCoordinator(log_dir, log_writer="thread")
    with pytest.raises(E.InvalidOptionError, match="lazy_delay is a number of seconds >= 0"):
        LmdbLog(log_dir, lazy_delay=-1)
    with pytest.raises(E.InvalidOptionError, match="map_size is a positive number of bytes"):
        LmdbLog(log_dir, map_size=0)
    assert not log_dir.exists()  # each refused before anything was made


# --- operators, maintenance, the CLI's parsers, fault injection -----------------------------


def test_resolve_refuses_a_bad_outcome_or_reason_before_looking_further(
    make_coord: Any, journal: Journal
) -> None:
    coord: TransactionCoordinator = make_coord(recovery_interval=None)
    txid = coord.begin_transaction()
    coord.enlist_participant(txid, RecordingParticipant("a", journal))
    with pytest.raises(E.InvalidOptionError, match="'commit' or 'abort', not 'maybe'"):
        coord.resolve(txid, "maybe", reason="x")  # refused before the live check
    with pytest.raises(E.InvalidOptionError, match="'commit' or 'abort'"):
        coord.resolve("no-such-tx", 1, reason="x")  # type: ignore[arg-type]
    coord.commit_transaction(txid)
    with pytest.raises(E.TransactionFinishedError):
        coord.resolve(txid, "commit", reason="done")
    assert coord.state(txid) is TxState.COMMITTED
    with pytest.raises(E.InvalidOptionError, match="progress must be a callable"):
        coord.recover_now(progress=5)  # type: ignore[arg-type]


def test_resolve_refuses_an_empty_reason(make_coord: Any) -> None:
    """The operator's resolution (the coordinator's, and the engine's that `dtc resolve`
    uses) refuses an empty reason and an outcome other than commit/abort, before it looks
    the transaction up."""
    coord: TransactionCoordinator = make_coord(recovery_interval=None)
    with pytest.raises(E.InvalidOptionError, match="say why"):
        coord.resolve("tx", "commit", reason="  ")
    engine = coord.engine  # type: ignore[attr-defined]
    with pytest.raises(E.InvalidOptionError, match="say why"):
        engine.resolve("tx", Outcome.COMMIT, reason="  ")
    with pytest.raises(E.InvalidOptionError, match="commit or abort"):
        engine.resolve("tx", MemberState.SKIPPED, reason="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("before", ["yesterday", None, float("nan"), True])
def test_compact_options(log_dir: Path, before: Any) -> None:
    """Format 2's compaction takes one option, ``before`` (a time): anything but a real
    number of seconds is refused, and nothing is deleted."""
    with LmdbLog(log_dir) as log:
        log.append([Opened("tx", time.time() - 60, Mode.TWO_PHASE, ())])
        log.append([Ended("tx", time.time() - 60)])
        with pytest.raises(E.InvalidOptionError, match="before"):
            log.compact(before)
        assert log.read("tx") is not None


def test_cli_parsers_raise_invalid_option() -> None:
    with pytest.raises(E.InvalidOptionError, match="not a duration"):
        parse_duration("10 minutes")
    with pytest.raises(E.InvalidOptionError, match="empty duration"):
        parse_duration(" ")
    with pytest.raises(E.InvalidOptionError, match="MODULE:ATTRIBUTE"):
        load_registry("myapp.participants")
    with pytest.raises(E.InvalidOptionError, match="no attribute"):
        load_registry("dtc_wal:no_such_registry")


def test_fault_injection_settings() -> None:
    with pytest.raises(E.InvalidOptionError, match="unknown crash point"):
        points.arm("nowhere")
    with pytest.raises(E.InvalidOptionError, match="on_hit counts from 1"):
        points.arm(points.CRASH_POINTS[0], on_hit=0)
    assert not points.ARMED
    with pytest.raises(E.InvalidOptionError, match="unknown phase"):
        FailTimes(1, phases="prepair")


@pytest.mark.parametrize("txid", ["", None, 7], ids=["empty", "None", "int"])
def test_barrier_refuses_a_txid_that_is_not_a_str(tmp_path: Path, txid: Any) -> None:
    with (
        IdempotencyBarrier(tmp_path / "barrier") as barrier,
        pytest.raises(E.UnknownTransactionError, match=re.escape(repr(txid))),
    ):
        barrier.state(txid)
