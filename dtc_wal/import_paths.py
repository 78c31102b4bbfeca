"""Import paths of callables: ``module:qualname`` strings that import back to the same object.

A saga step registered with two functions is recoverable when both functions can be found
again by name in another process: the log stores their import paths and recovery imports
them (docs/protocol.md, "Recoverable saga steps"). :func:`import_path` checks that at
registration -- it imports the path back and compares -- and says why not when it cannot;
:func:`resolve` is what recovery does with a logged path; :func:`takes_data` is the arity
check that decides whether a compensation gets the saga's data.

>>> import_path(import_path)
'dtc_wal.import_paths:import_path'
>>> import_path(lambda txid: None)
NotImportable('a lambda')
>>> resolve('dtc_wal.import_paths:import_path') is import_path
True
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["NotImportable", "find_module", "import_path", "resolve", "takes_data"]


@dataclasses.dataclass(frozen=True, slots=True)
class NotImportable:
    """Why a callable has no import path; ``reason`` completes "it is ..."."""

    reason: str

    def __repr__(self) -> str:
        return f"NotImportable({self.reason!r})"


def import_path(fn: object) -> str | NotImportable:
    """``module:qualname`` of ``fn`` when importing it gives back ``fn`` itself.

    Lambdas, functions defined inside functions, bound methods and callable objects have
    none. Nor has a function of the script being run (``__main__``): another process --
    ``dtc recover``, or the service started another way -- has its own ``__main__``. A
    script run with ``python -m package.module`` is importable as ``package.module``, and
    its functions get that path.
    """
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType | type):
        return NotImportable(
            f"a bound method of a {type(owner).__name__} object (the log cannot store the "
            "object it is bound to)"
        )
    if not (inspect.isroutine(fn) or inspect.ismethod(fn)):
        return NotImportable(
            f"a callable {type(fn).__name__} object, not a function (the log cannot store it)"
        )
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str):
        return NotImportable("a callable without a module and qualified name")
    if "<lambda>" in qualname:
        return NotImportable("a lambda")
    if "<locals>" in qualname:
        return NotImportable("a function defined inside another function")
    if module == "__main__":
        return _main_path(fn, qualname)
    try:
        found = _lookup(importlib.import_module(module), qualname)
    except Exception as exc:
        return NotImportable(f"{module}:{qualname}, which does not import ({_text(exc)})")
    if not _same(found, fn):
        return NotImportable(
            f"{module}:{qualname}, which imports a different object (was the name rebound, "
            "or the function decorated without functools.wraps?)"
        )
    return f"{module}:{qualname}"


def _main_path(fn: object, qualname: str) -> str | NotImportable:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if not isinstance(name, str) or not name or name == "__main__":
        return NotImportable(
            f"{qualname} of the script being run (__main__), which another process such as "
            "`dtc recover` cannot import: move it into a module of your application"
        )
    # Run with `python -m NAME`: NAME finds the same file. Importing it here would run the
    # module a second time, so compare in the running __main__ and only look NAME up.
    try:
        found = _lookup(main, qualname)
    except AttributeError as exc:
        return NotImportable(f"{name}:{qualname}, which does not import ({_text(exc)})")
    if not _same(found, fn):
        return NotImportable(f"{name}:{qualname}, which imports a different object")
    missing = find_module(name)
    if missing is not None:
        return NotImportable(f"{qualname} of __main__, not importable as {name} ({missing})")
    return f"{name}:{qualname}"


def resolve(path: str) -> Callable[..., Any]:
    """Import ``module:qualname`` and return the callable; raises ``ImportError`` (module
    missing, or its import failed) or ``AttributeError``/``TypeError`` with the path."""
    module, sep, qualname = path.partition(":")
    if not sep or not module or not qualname:
        raise ImportError(f"{path!r} is not an import path MODULE:QUALNAME")
    try:
        imported = importlib.import_module(module)
    except ImportError:
        raise
    except Exception as exc:
        raise ImportError(f"importing {module} raised {_text(exc)}") from exc
    found = _lookup(imported, qualname)
    if not callable(found):
        raise TypeError(f"{path} is a {type(found).__name__}, not a callable")
    return found


def find_module(module: str) -> str | None:
    """None when ``module`` can be found on the import path (without running it), else
    why not. Parent packages are imported to look inside them, as ``import`` does."""
    try:
        spec = importlib.util.find_spec(module)
    except Exception as exc:
        return f"module {module} cannot be found ({_text(exc)})"
    return None if spec is not None else f"module {module} is not on the import path"


def takes_data(fn: Callable[..., object]) -> bool:
    """True when ``fn(txid, data)`` binds: a second positional parameter (or ``*args``).

    A callable whose signature cannot be read is taken to accept ``txid`` alone, the
    original contract."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    try:
        signature.bind("txid", {})
    except TypeError:
        return False
    return True


def _lookup(module: object, qualname: str) -> object:
    found = module
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _same(found: object, fn: object) -> bool:
    # A classmethod is bound anew at every attribute access: equal, not identical.
    return found is fn or (inspect.ismethod(fn) and found == fn)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
