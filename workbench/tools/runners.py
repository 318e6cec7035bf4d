"""The runner interface shared by engines and framework baselines (Polygraphy's shape).

The public `infer(feeds) -> {output: np.ndarray}` checks the feeds, times the call and hands back
host arrays; a subclass writes `_infer_impl(device_feeds) -> device_outputs` and, on a GPU,
`to_device` / `to_host`. bench() drives those pieces directly so transfers can be timed apart.

    >>> runner = EngineRunner(engine)            # or wb.baselines.OnnxRuntime("model.onnx")
    >>> outputs = runner.infer({"input": x})
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..dtypes import np_dtype
from ..errors import ExecutionError, UnsupportedError, WorkbenchError
from . import device


class Runner:
    """Base of everything the tools run. Subclasses set the class attributes and write _infer_impl."""

    name = "runner"
    device = "cpu"         # where the compute happens: "cpu" or "cuda"
    gpu_lib = None         # which library's CUDA events and streams time this runner: "cupy", "torch", None
    traced_memory = False  # True when its allocations are NumPy's, so tracemalloc sees them

    last_inference_time = None  # seconds the last infer() took, host wall clock

    # ---- what a subclass provides ---------------------------------------------------------------
    def input_specs(self) -> list:
        """[TensorSpec] of the inputs; shapes may hold symbolic dims (str) or be None when unknown."""
        raise NotImplementedError

    def opt_shapes(self) -> dict:
        """{input: concrete shape} to use when the caller gives none (an engine's profile opt shapes)."""
        return {}

    def output_names(self) -> list:
        raise NotImplementedError

    def _infer_impl(self, feeds: dict) -> dict:
        raise NotImplementedError

    def to_device(self, feeds: dict) -> dict:
        """Feeds moved to where the runner computes (identity on the host)."""
        return feeds

    def to_host(self, outputs: dict) -> dict:
        return {name: device.to_host(value) for name, value in outputs.items()}

    def fork(self) -> "Runner":
        """A runner that may run concurrently with this one (for multi-stream benchmarks)."""
        return self

    def set_cuda_graph(self, on: bool) -> bool:
        """Turn CUDA-graph replay on or off where the runner supports it; True when it is on."""
        return False

    def memory_info(self) -> dict:
        """What is known without running: weights / activations / workspace / peak bytes, and the source."""
        return {}

    def intermediates(self, feeds: dict, names: list) -> dict:
        """{tensor: array} for those of `names` this runner can produce (used by per-layer comparison)."""
        raise UnsupportedError(f"{self.name} cannot produce intermediate tensors; per-layer comparison needs "
                               f"wb.baselines.Reference(model) or wb.baselines.OnnxRuntime(model)")

    # ---- the public surface ---------------------------------------------------------------------
    def infer(self, feeds: dict) -> dict:
        """Run once on {input: array}; returns {output: np.ndarray}. Sets last_inference_time."""
        feeds = self.check_feeds(feeds)
        t0 = time.perf_counter()
        try:
            outputs = self.to_host(self._infer_impl(self.to_device(feeds)))
        except WorkbenchError:
            raise
        except Exception as e:  # noqa: BLE001 - a framework's own error, made to name the runner
            raise ExecutionError(f"{self.name} failed on inputs {_describe(feeds)}: {type(e).__name__}: {e}") from e
        self.last_inference_time = time.perf_counter() - t0
        return outputs

    def check_feeds(self, feeds) -> dict:
        """Feeds after checking they name exactly this runner's inputs, with matching dtypes."""
        if not isinstance(feeds, dict):
            raise ExecutionError(f"{self.name}: inputs must be a dict {{input name: array}}, "
                                 f"got {type(feeds).__name__}")
        specs = {s.name: s for s in self.input_specs()}
        missing, unknown = sorted(set(specs) - set(feeds)), sorted(set(feeds) - set(specs))
        if missing or unknown:
            raise ExecutionError(f"{self.name}: inputs do not match: missing {missing}, unknown {unknown}; "
                                 f"it takes {sorted(specs)}")
        for name, value in feeds.items():
            want = specs[name].dtype
            if isinstance(value, np.ndarray) and want and value.dtype != np_dtype(want):
                raise ExecutionError(f"{self.name}: input {name!r} is {value.dtype}, it takes {want}; "
                                     f"pass x.astype(np.{want})")
        return feeds

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, device={self.device})"


def _describe(feeds: dict) -> str:
    return ", ".join(f"{k}: {getattr(v, 'dtype', '?')}{tuple(getattr(v, 'shape', ()))}" for k, v in feeds.items())


class EngineRunner(Runner):
    """Runs a workbench Engine (or a plan file / plan bytes) through its own execution context.

    >>> runner = EngineRunner("model.plan")
    """

    def __init__(self, engine):
        self.engine = _load_engine(engine)
        self.context = self.engine.create_execution_context()
        self.device = "cuda" if self.engine.backend == "cuda" else "cpu"
        self.gpu_lib = "cupy" if self.device == "cuda" else None
        self.traced_memory = self.device == "cpu"
        self.name = f"workbench-{self.engine.backend}"

    def input_specs(self) -> list:
        return self.engine.inputs

    def opt_shapes(self) -> dict:
        return {name: tuple(triple[1]) for name, triple in self.engine.profiles[0].items()}

    def output_names(self) -> list:
        return list(self.engine.network.outputs)

    def _infer_impl(self, feeds: dict) -> dict:
        return self.context.execute(feeds)

    def to_device(self, feeds: dict) -> dict:
        if self.gpu_lib != "cupy":
            return feeds
        import cupy

        return {name: cupy.asarray(value) for name, value in feeds.items()}

    def fork(self) -> "EngineRunner":
        return EngineRunner(self.engine)

    def backend_runner(self):
        """The backend's runner inside the context (the cuda one has graphs and a device profiler)."""
        return getattr(self.context, "_runner", None)

    def set_cuda_graph(self, on: bool) -> bool:
        # The cuda runner captures a graph on the second run at a shape and replays it afterwards.
        backend = self.backend_runner()
        if self.device != "cuda" or not hasattr(backend, "use_graphs"):
            return False
        backend.use_graphs = bool(on)
        return backend.use_graphs

    def memory_info(self) -> dict:
        plan = self.engine.memory
        workspace = int(self.engine.report.get("workspace_bytes", 0) or 0)
        sizes = {"weights_bytes": int(plan.weight_bytes), "activations_bytes": int(plan.arena_bytes),
                 "io_bytes": int(plan.io_bytes), "workspace_bytes": workspace}
        sizes["peak_bytes"] = sum(sizes.values())
        sizes["source"] = f"engine memory plan at shapes {plan.shapes.get('bindings') or plan.shapes}"
        return sizes

    def run_with_layers(self, device_feeds: dict, on_layer) -> dict:
        """Run once on feeds already checked and moved (to_device), calling on_layer(layer, env) after
        every layer (for capture and profiling)."""
        return self.context.execute(device_feeds, on_layer=on_layer)

    def capture(self, feeds: dict) -> tuple:
        """(outputs, [(layer, {tensor: host array})]) with every layer's outputs, in execution order.

        Outputs held as int8 grid integers between int8 layers come back as their float32 values.
        """
        from ..quant.chain import float_value, int8_grids

        trace, grids = [], int8_grids(self.engine.network)

        def keep(layer, env):
            trace.append((layer, {n: float_value(grids, n, np.array(device.to_host(env[n])))
                                  for n in layer.outputs if n and n in env}))

        outputs = self.to_host(self.run_with_layers(self.to_device(self.check_feeds(feeds)), keep))
        return outputs, trace


def _load_engine(source):
    from ..runtime.engine import Engine

    if isinstance(source, Engine):
        return source
    from ..runtime import plan

    if isinstance(source, (bytes, bytearray, memoryview)):
        return plan.deserialize(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        return plan.load_plan(source)
    raise WorkbenchError(f"EngineRunner takes an Engine, a plan file path or plan bytes, "
                         f"not {type(source).__name__}")


def is_plan_file(path) -> bool:
    from ..runtime.plan import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def is_torch_object(obj) -> bool:
    """True for torch modules and exported programs (without importing torch)."""
    return any(c.__module__.split(".")[0] == "torch" for c in type(obj).__mro__)


def _is_plan_bytes(obj) -> bool:
    from ..runtime.plan import MAGIC

    return isinstance(obj, (bytes, bytearray)) and bytes(obj[:len(MAGIC)]) == MAGIC


def as_runner(obj, role: str = "runner") -> Runner:
    """A Runner from a Runner, an Engine or a plan; for role="baseline" also from an ONNX model or torch module.

    >>> as_runner(engine); as_runner("model.onnx", role="baseline")
    """
    from ..runtime.engine import Engine

    if isinstance(obj, Runner):
        return obj
    if isinstance(obj, Engine) or _is_plan_bytes(obj) or isinstance(obj, (str, os.PathLike)) and is_plan_file(obj):
        return EngineRunner(obj)
    is_model = is_torch_object(obj) or type(obj).__name__ == "ModelProto" or isinstance(obj, (bytes, bytearray)) or (
        isinstance(obj, (str, os.PathLike)) and Path(obj).is_file())
    if role == "baseline" and is_model:
        from ..baselines import default_baseline

        return default_baseline(obj)
    if is_model:
        raise WorkbenchError(f"{_short(obj)} is a model, not an engine: build it first "
                             f"(engine = wb.build(wb.load_onnx(path), wb.BuilderConfig(...))), or pass "
                             f"wb.baselines.OnnxRuntime(model) / wb.baselines.Torch(module) to measure the framework")
    if isinstance(obj, (str, os.PathLike)):
        raise WorkbenchError(f"{obj}: no such file; give an Engine, a plan file or a Runner")
    raise WorkbenchError(f"cannot run a {type(obj).__name__}; give an Engine, a plan file path, "
                         f"or a runner such as wb.baselines.OnnxRuntime(model)")


def _short(obj) -> str:
    return str(obj) if isinstance(obj, (str, os.PathLike)) else type(obj).__name__
