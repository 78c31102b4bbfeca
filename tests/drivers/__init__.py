"""Tests of dtc_wal.drivers. ``saga_functions``: importable module-level step functions
(a recovery pass rebuilds them by import path)."""

from __future__ import annotations

from . import saga_functions as saga_functions
