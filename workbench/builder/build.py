"""The build driver: validate, optimize, assign precisions, choose tactics, plan memory -> Engine.

    >>> engine = workbench.build(workbench.load_onnx("model.onnx"), BuilderConfig(precision="fp16"))
"""
from __future__ import annotations

import time

import numpy as np

from .. import __version__
from ..backends import get_backend
from ..errors import CancelledError, ResourceLimitError
from ..quant import pipeline as quant
from ..runtime.engine import Engine
from .config import BuilderConfig
from .memory import plan_memory, tensor_bytes
from .precision import assign_precisions, storage_dtypes, stored_weights
from .profiles import resolve_profiles

STAGES = ("validate", "optimize", "calibrate", "profiles", "precisions", "tactics", "memory")


class Progress:
    """Reports build stages to an optional callback(stage, fraction) and honours cancellation."""

    def __init__(self, callback=None, cancel=None):
        self.callback, self.cancel = callback, cancel

    def __call__(self, stage: str, fraction: float = 0.0) -> None:
        if self.cancel is not None and self.cancel():
            raise CancelledError(f"build cancelled during {stage!r}; nothing was kept")
        if self.callback is not None:
            self.callback(stage, fraction)


def build(network, config: BuilderConfig | None = None, progress=None, cancel=None) -> Engine:
    """Build an Engine from a Network.

    progress(stage, fraction) is called as the build advances; cancel() returning True stops it
    with a CancelledError and leaves the network untouched.
    """
    from ..passes.pipeline import optimize

    cfg = config or BuilderConfig()
    report = {"workbench_version": __version__, "started": time.time(), "stages": {}}
    tick = Progress(progress, cancel)
    backend = get_backend(cfg.resolved_device())

    def stage(name, fn, *args):
        tick(name, STAGES.index(name) / len(STAGES))
        t0 = time.perf_counter()
        out = fn(*args)
        report["stages"][name] = round(time.perf_counter() - t0, 6)
        return out

    net = stage("validate", _validated, network, cfg)
    net, report["passes"] = stage("optimize", optimize, net)
    calibrating = lambda f: tick("calibrate", (STAGES.index("calibrate") + f) / len(STAGES))  # noqa: E731
    net, quantized, report["quantization"] = stage("calibrate", quant.lower, net, cfg, calibrating, cancel)
    profiles = stage("profiles", resolve_profiles, net, cfg)
    precisions = stage("precisions", assign_precisions, net, cfg, set(quantized))
    precisions.update(quantized)
    log: dict = {"timings": {}, "excluded": {}, "notes": []}
    tactics = stage("tactics", backend.select_tactics, net, precisions, cfg, log)
    tactic_params = log.pop("tactic_params", {})
    report.update(log)
    storage = storage_dtypes(net, precisions)
    memory = stage("memory", _plan_at_max, net, profiles, storage, cfg)
    # Weights are rounded only now: shape inference above needs the network's logical dtypes.
    net.weights = stored_weights(net, precisions)
    memory.weight_bytes = int(sum(np.asarray(w).nbytes for w in net.weights.values()))
    tick("done", 1.0)
    report["build_seconds"] = round(time.time() - report.pop("started"), 3)
    return Engine(net, backend.NAME, precisions, tactics, profiles, memory, cfg.to_dict(),
                  backend.device_info(), report, tactic_params=tactic_params,
                  storage_dtypes=storage)


def _validated(network, cfg):
    """A copy of the network, checked, with the calibration data checked against it (before any work)."""
    net = network.copy().validate()
    quant.check(net, cfg)
    return net


def _plan_at_max(net, profiles: list, storage: dict, cfg):
    """Memory plan at the largest shapes of the largest profile, after checking tensor sizes."""
    from ..passes.infer import infer

    biggest = max(profiles, key=lambda p: sum(int(np.prod(s[2])) for s in p.values()))
    shapes = {name: triple[2] for name, triple in biggest.items()}
    concrete = net.copy()
    bindings = _bindings(net, shapes)
    for name, shape in shapes.items():
        concrete.tensors[name].shape = tuple(shape)
    infer(concrete)
    _check_sizes(concrete, storage, cfg)
    plan = plan_memory(concrete, storage, shapes)
    plan.shapes["bindings"] = bindings
    return plan


def _bindings(net, shapes: dict) -> dict:
    out = {}
    for name, shape in shapes.items():
        for d, v in zip(net.tensors[name].shape or (), shape):
            if isinstance(d, str):
                out[d] = int(v)
    return out


def _check_sizes(net, storage: dict, cfg) -> None:
    from ..limits import default_tensor_limit, format_bytes

    limit = cfg.memory_limit or default_tensor_limit()
    for name, t in net.tensors.items():
        n = tensor_bytes(t.shape, storage.get(name, t.dtype))
        if n is not None and n > limit:
            raise ResourceLimitError(f"tensor {name!r} would take {format_bytes(n)} at shape {t.shape}, over "
                                     f"the limit of {format_bytes(limit)}; use smaller profile shapes or "
                                     f"raise BuilderConfig(memory_limit=...)")
