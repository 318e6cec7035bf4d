"""The notebook workbench: a Session (state and actions), plots (DataFrame -> Figure) and the
Workbench dashboard (ipywidgets bound to a Session).

    >>> import workbench as wb
    >>> d = wb.zoo.digits()
    >>> wb.ui.Workbench(d.model, calibration_data=d.x_calib, eval_data=(d.x_test, d.y_test))

Names load on first use: the session and plots never import ipywidgets.
"""
from __future__ import annotations

import importlib

_LAZY = {"Session": "session", "Job": "session", "Workbench": "dashboard"}
_MODULES = {"plots", "session", "dashboard", "adapters"}


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = sorted(_LAZY) + sorted(_MODULES)
