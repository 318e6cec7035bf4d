"""ExecutionContext: per-caller state for running an engine; many per engine, sharing its weights.

    >>> ctx = engine.create_execution_context()
    >>> outputs = ctx.execute({"input": x})
"""
from __future__ import annotations

import threading

import numpy as np

from ..backends import get_backend
from ..builder.profiles import pick_profile
from ..dtypes import np_dtype
from ..errors import ExecutionError


class ExecutionContext:
    def __init__(self, engine):
        self.engine = engine
        self._runner = get_backend(engine.backend).make_runner(engine)
        self._busy = threading.Lock()
        self.last_profile = None
        self._specs = {s.name: s for s in engine.inputs}
        self._dtypes = {name: np_dtype(s.dtype) for name, s in self._specs.items()}
        self._fits = {}  # {input shapes: profile index}: a run's shapes usually repeat the last ones

    def execute(self, inputs: dict, on_layer=None) -> dict:
        """Run the engine on {input name: array}; returns {output name: array}.

        on_layer(layer, env) is called after each layer (used by per-layer comparison and profiling).
        """
        feeds = self.check_inputs(inputs)
        if not self._busy.acquire(blocking=False):
            raise ExecutionError("this execution context is already running in another thread; "
                                 "create one context per thread with engine.create_execution_context()")
        try:
            return self._runner.run(feeds, on_layer)
        finally:
            self._busy.release()

    def execute_async(self, inputs: dict, stream=None) -> dict:
        """Enqueue a run on `stream` (a CuPy stream; the context's own when None) without waiting for it.

        Outputs are device arrays, valid once the stream has been synchronized. CPU engines run at once.
        """
        feeds = self.check_inputs(inputs)
        run_async = getattr(self._runner, "run_async", None)
        return run_async(feeds, stream) if run_async is not None else self._runner.run(feeds)

    def profile(self, inputs: dict, runs: int = 10) -> list:
        """Per-layer times: [{"layer": name, "ms": median time}, ...] from the backend's profiler."""
        feeds = self.check_inputs(inputs)
        profiler = getattr(self._runner, "profile", None)
        if profiler is None:
            raise ExecutionError(f"the {self.engine.backend} backend has no per-layer profiler; "
                                 f"use engine.inspect().profile() instead")
        return profiler(feeds, runs)

    def memory(self) -> dict:
        """Device memory held by this context and its engine (weights, activations, workspace), in bytes."""
        report = getattr(self._runner, "memory", None)
        if report is not None:
            return report()
        plan = self.engine.memory
        return {"weights": plan.weight_bytes, "activations": plan.arena_bytes, "workspace": 0}

    def check_inputs(self, inputs) -> dict:
        """Inputs as arrays of the engine's dtypes, after checking names, dtypes and profile shapes."""
        if not isinstance(inputs, dict):
            raise ExecutionError(f"execute takes a dict {{input name: array}}, got {type(inputs).__name__}")
        specs = self._specs
        if len(inputs) != len(specs) or not all(name in specs for name in inputs):
            missing, unknown = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
            raise ExecutionError(f"inputs do not match the engine: missing {missing}, unknown {unknown}; "
                                 f"the engine takes {sorted(specs)}")
        feeds = {name: _as_array(name, value, specs[name], self._dtypes[name]) for name, value in inputs.items()}
        shapes = tuple((n, a.shape) for n, a in feeds.items())
        profile = self._fits.get(shapes)
        if profile is None:
            profile = pick_profile(self.engine.profiles, {n: a.shape for n, a in feeds.items()})
            if len(self._fits) >= _FITS_KEPT:
                self._fits.clear()
            self._fits[shapes] = profile
        self.last_profile = profile
        return feeds


_FITS_KEPT = 64  # input shapes whose profile a context remembers


def _as_array(name: str, value, spec, want: np.dtype) -> np.ndarray:
    if type(value) is np.ndarray:  # the common case, first: no attribute lookups
        arr = value
    elif isinstance(value, np.ndarray) or hasattr(value, "__array_interface__"):
        arr = np.asarray(value)
    elif hasattr(value, "__cuda_array_interface__"):
        return value  # device arrays are the cuda backend's to check
    else:
        arr = np.asarray(value, dtype=want)
    if arr.dtype != want:
        raise ExecutionError(f"input {name!r} is {arr.dtype}, the engine takes {spec.dtype}: "
                             f"pass x.astype(np.{spec.dtype}) (or rebuild from a model that declares {arr.dtype})")
    return arr
