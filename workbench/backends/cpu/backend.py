"""The CPU backend: NumPy kernels run layer by layer, buffers freed as soon as they are dead."""
from __future__ import annotations

import os
import platform

import numpy as np
import threadpoolctl

from ...builder.precision import MATMUL_OPS
from ...dtypes import np_dtype
from ...ir.shapes import check_run_time_sizes
from ...limits import VALUE_SHAPED_OPS, default_tensor_limit
from .evaluate import call, resolve, upcast
from .precision import STORAGE, round_tf32
from .registry import needs_scope

NAME = "cpu"
# Busy-waiting BLAS threads fight the executor's own NumPy work on few cores: contexts can cap them.
_BLAS = threadpoolctl.ThreadpoolController()


def device_info() -> dict:
    return {"backend": NAME, "name": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def select_tactics(net, precisions: dict, cfg, log) -> dict:
    """One NumPy tactic per layer on the CPU: nothing to time."""
    return {layer.name: "numpy" for layer in net.layers}


class Step:
    """One layer, ready to run: its kernel, attributes, and what to free afterwards."""

    __slots__ = ("layer", "fn", "attrs", "inputs", "outputs", "dtypes", "free", "tf32", "lowp", "f32", "scope",
                 "size_limit")

    def __init__(self, layer, fn, attrs, dtypes, free, tf32, lowp, f32, scope=None, size_limit=None):
        self.layer, self.fn, self.attrs = layer, fn, attrs
        self.inputs, self.outputs = layer.inputs, layer.outputs
        self.dtypes, self.free, self.tf32, self.lowp = dtypes, free, tf32, lowp
        self.f32 = f32  # per input: is it a float32 tensor of the model (maybe stored in fp16/bf16)?
        self.size_limit = size_limit  # bytes, for layers whose output size depends on input values
        self.scope = scope  # for kernels with subgraphs: [(outer name its subgraphs read, is float32)]

    def keywords(self, env: dict) -> dict:
        """The kernel's attributes, and for a kernel with subgraphs the outer values they read (in fp32)."""
        if self.scope is None:
            return self.attrs
        return {**self.attrs, "scope": {n: upcast(env[n]) if f32 else env[n] for n, f32 in self.scope}}

    def arguments(self, env: dict) -> list:
        """The kernel's inputs: float32 values rounded to the layer's precision, then computed in float32.

        A layer of VALUE_SHAPED_OPS is first checked: outputs over the size limit are refused here.
        """
        args = [env[n] if n else None for n in self.inputs]
        if self.size_limit is not None:
            check_run_time_sizes(self.layer, args, self.size_limit)
        if self.lowp is not None:
            args = [a.astype(self.lowp) if a is not None and a.dtype == np.float32 else a for a in args]
        args = [upcast(a) if f32 else a for a, f32 in zip(args, self.f32)]
        if self.tf32:
            args = [round_tf32(a) if a is not None else None for a in args]
        return args


class Runner:
    """Executes an engine's layers on NumPy. One per execution context."""

    def __init__(self, engine):
        net = engine.network
        self.weights = engine.network.weights
        self.outputs = list(net.outputs)
        self.out_dtypes = {n: np_dtype(net.tensors[n].dtype) for n in net.outputs}
        self.steps = _compile(engine)
        self.threads = engine.config.get("cpu_threads")

    def run(self, feeds: dict, on_layer=None) -> dict:
        if self.threads is None:
            return self._run(feeds, on_layer)
        with _BLAS.limit(limits=self.threads, user_api="blas"):
            return self._run(feeds, on_layer)

    def _run(self, feeds: dict, on_layer=None) -> dict:
        env = dict(self.weights)
        env.update(feeds)
        for step in self.steps:
            outs = call(step.fn, step.keywords(env), step.layer, step.arguments(env))
            for name, value, dtype in zip(step.outputs, outs, step.dtypes):
                if name:
                    env[name] = value if value is None or value.dtype == dtype else value.astype(dtype)
            if on_layer is not None:
                on_layer(step.layer, env)
            for name in step.free:
                env.pop(name, None)
        return {n: np.asarray(env[n]).astype(self.out_dtypes[n], copy=False) for n in self.outputs}


def _compile(engine) -> list:
    net = engine.network
    keep = set(net.outputs) | set(net.inputs) | set(net.weights)
    last_use = {}
    for i, layer in enumerate(net.layers):
        for name in layer.reads():  # a subgraph's outer reads keep a value alive too
            last_use[name] = i
    limit = engine.config.get("memory_limit") or default_tensor_limit()
    steps = []
    for i, layer in enumerate(net.layers):
        fn, attrs = resolve(layer)
        dtypes = [np_dtype(engine.storage_dtypes.get(o, net.tensors[o].dtype)) if o else None
                  for o in layer.outputs]
        free = [n for n in set(layer.reads()) | set(layer.outputs)
                if n and n not in keep and last_use.get(n, -1) <= i]
        precision = engine.precisions.get(layer.name, "fp32")
        tf32 = precision == "tf32" and layer.op in MATMUL_OPS
        lowp = np_dtype(STORAGE[precision]) if precision in STORAGE else None
        f32 = [bool(n) and net.tensors[n].dtype == "float32" for n in layer.inputs]
        scope = [(n, net.tensors[n].dtype == "float32") for n in layer.outer_reads()] if needs_scope(layer) else None
        guarded = layer.op in VALUE_SHAPED_OPS and layer.domain in ("", "ai.onnx")
        steps.append(Step(layer, fn, attrs, dtypes, free, tf32, lowp, f32, scope, limit if guarded else None))
    return steps


def make_runner(engine) -> Runner:
    return Runner(engine)
