"""workbench: compile trained ONNX models into fast inference engines, on the CPU (NumPy) or a GPU (CuPy).

    >>> import workbench as wb
    >>> net = wb.load_onnx("model.onnx")
    >>> engine = wb.build(net, wb.BuilderConfig(device="auto", precision="fp16", max_batch=32))
    >>> engine.save("model.plan")
    >>> out = wb.load_plan("model.plan").create_execution_context().execute({"input": x})
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    BuildError, CancelledError, ConfigError, ExecutionError, ParseError, PlanFormatError, PluginError,
    ResourceLimitError, ShapeError, UnsupportedError, ValidationError, WorkbenchError,
)
from .plugins import plugin  # noqa: E402

_LAZY = {
    "load_onnx": ("workbench.parsers.onnx", "load_onnx"),
    "BuilderConfig": ("workbench.builder.config", "BuilderConfig"),
    "build": ("workbench.builder.build", "build"),
    "load_plan": ("workbench.runtime.plan", "load_plan"),
    "Engine": ("workbench.runtime.engine", "Engine"),
    "ExecutionContext": ("workbench.runtime.context", "ExecutionContext"),
    "Network": ("workbench.ir.network", "Network"),
    "bench": ("workbench.tools.bench", "bench"),
    "compare": ("workbench.tools.compare", "compare"),
    "sweep": ("workbench.tools.sweep", "sweep"),
}
_SUBMODULES = {"zoo", "quant", "tools", "baselines", "ui", "conformance"}


def __getattr__(name: str):
    # Heavy modules (onnx, pandas, the builder) load on first use so `import workbench` stays fast.
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["__version__", "WorkbenchError", "ParseError", "ValidationError", "ShapeError", "ConfigError",
           "BuildError", "PlanFormatError", "ExecutionError", "UnsupportedError", "ResourceLimitError",
           "PluginError", "CancelledError", "plugin", *_LAZY]
