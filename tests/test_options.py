"""One options dataclass configures a coordinator; the keyword form is the same thing."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from dtc_wal import CoordinatorOptions, TransactionCoordinator
from dtc_wal.coordinator.options import OptionsKwargs
from dtc_wal.errors import InvalidOptionError


def test_the_keyword_form_lists_exactly_the_options() -> None:
    fields = {f.name for f in dataclasses.fields(CoordinatorOptions)}
    assert set(typing.get_type_hints(OptionsKwargs)) == fields


def test_options_and_keywords_configure_the_same(tmp_path: Path) -> None:
    options = CoordinatorOptions(prepare_timeout=2.0, zombie_timeout=None, strict=True)
    with TransactionCoordinator(tmp_path / "a", options=options, recovery_interval=None) as a:
        assert a.options == dataclasses.replace(options, recovery_interval=None)
        assert (a.zombie_timeout, a.strict) == (None, True)
    with TransactionCoordinator(
        tmp_path / "b", prepare_timeout=2.0, zombie_timeout=None, strict=True
    ) as b:
        assert b.options == options
    assert options.prepare_timeout == 2.0  # frozen: the override made a new value


def test_a_bad_value_is_refused_when_the_options_are_made(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="max_retries must be an int >= 0"):
        CoordinatorOptions(max_retries=-1)
    with pytest.raises(InvalidOptionError, match="prepare_timeout"):
        TransactionCoordinator(tmp_path / "log", prepare_timeout=0)
    assert not (tmp_path / "log").exists()  # refused before anything opened


def test_an_unknown_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match=r"unknown option.*prepare_timout") as info:
        TransactionCoordinator(tmp_path / "log", prepare_timout=1.0)  # type: ignore[call-arg]
    assert "prepare_timeout" in str(info.value)  # the list says what it might have meant
    with pytest.raises(InvalidOptionError, match=r"options must be a dtc_wal\.CoordinatorOptions"):
        TransactionCoordinator(tmp_path / "log", options={"sync": False})  # type: ignore[arg-type]
    assert not (tmp_path / "log").exists()
