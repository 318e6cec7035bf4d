"""The CUDA backend's interface (same as backends/cpu/backend.py): NAME, device_info, select_tactics, make_runner.

    >>> engine = wb.build(net, wb.BuilderConfig(device="cuda", precision="fp16"))
    >>> ctx = engine.create_execution_context()
    >>> out = ctx.execute({"input": x})            # NumPy in, NumPy out; CuPy in, CuPy out (on device)
"""
from __future__ import annotations

from ...errors import UnsupportedError
from ..cpu.registry import needs_scope
from . import device
from .runner import Runner
from .select import select

NAME = "cuda"


def device_info() -> dict:
    """The GPU the engine is built on: name, compute capability, memory, library versions."""
    return dict(device.info())


def select_tactics(net, precisions: dict, cfg, log: dict) -> dict:
    """{layer: tactic}, choosing by running and timing candidates on the GPU (level 0: heuristics only).

    Recipes (JSON data the runner rebuilds kernels from) go to log["tactic_params"]; every timing and
    every excluded candidate with its reason go to log["timings"] / log["excluded"].
    """
    scoped = [layer.name for layer in net.layers if needs_scope(layer)]
    if scoped:
        raise UnsupportedError(f"layers {scoped[:5]} hold control flow (If/Loop/Scan), which the cuda backend does "
                               f"not run yet; build this model with device='cpu'")
    return select(net, precisions, cfg, log)


def make_runner(engine) -> Runner:
    """A runner for one execution context: its own stream and memory, the engine's weights shared."""
    return Runner(engine)
