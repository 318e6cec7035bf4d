"""Registries fill themselves: every module of a package is imported once, on first use."""
from __future__ import annotations

import functools
import importlib
import pkgutil


@functools.lru_cache(maxsize=None)
def import_modules(package: str) -> tuple:
    """Import every module of `package` (e.g. "workbench.ir.opdefs") once; returns their names."""
    pkg = importlib.import_module(package)
    names = tuple(f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__))
    for name in names:
        importlib.import_module(name)
    return names
