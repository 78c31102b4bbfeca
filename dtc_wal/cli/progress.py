"""Progress bars for long commands: on a terminal only, quiet when piped."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import click

__all__ = ["is_terminal", "progress_bar"]


def is_terminal() -> bool:
    """True when both stdout and stderr are terminals (the bar is drawn on stderr)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def _ignore(done: int, total: int) -> None:
    return None


@contextlib.contextmanager
def progress_bar(label: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)`` drawing a bar on stderr, or a no-op when piped."""
    if not enabled or not is_terminal():
        yield _ignore
        return
    with click.progressbar(length=1, label=label, file=sys.stderr, show_pos=True, width=30) as bar:

        def update(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(max(0, done - bar.pos))

        yield update
