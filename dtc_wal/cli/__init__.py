"""The ``dtc`` command line (click): thin over the public API."""

from __future__ import annotations

from .main import cli, main

__all__ = ["cli", "main"]
