"""The CPU backend: NumPy kernels run layer by layer, buffers freed as soon as they are dead."""
from __future__ import annotations

import os
import platform
import threading
import time

import numpy as np
import threadpoolctl

from ...builder.precision import MATMUL_OPS
from ...dtypes import LOW_FLOATS, np_dtype
from ...errors import UnsupportedError, WorkbenchError
from ...ir.shapes import check_run_time_sizes
from ...limits import VALUE_SHAPED_OPS, default_tensor_limit
from .evaluate import call, named_outputs, resolve, upcast
from .precision import STORAGE, round_tf32
from .registry import needs_scope, tactics_for

NAME = "cpu"
DEFAULT_TACTIC = "numpy"  # layers whose kernel has one way to compute
# Networks whose largest layer does fewer multiply-adds than this run BLAS on one thread (see blas_threads);
# ResNet-50 reaches it at batch 4.
_THREADED_MACS = 4e8
_TIMING_BUDGET_S = 0.05  # per layer with several tactics, before its timing rounds stop early
_TIMING_BATCH = 4  # tactics are timed on at most this many images: their ranking does not change with more
_UFUNC_BUFFER = 1024  # elements (NumPy's default: 8192)


def device_info() -> dict:
    return {"backend": NAME, "name": platform.processor() or platform.machine(), "cores": cores()}


# ------------------------------------------------------------------------------------- threads
def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def blas_threads(cpu_threads, macs_per_layer: float) -> int:
    """BLAS threads of a context: cpu_threads when set; else 1, or half the cores for big layers.

    BLAS threads busy-wait between calls, fighting the executor's own NumPy work and any other
    process: measured on 2 shared cores (ResNet-50), 2 threads ran 1.6x faster when the machine was
    idle but 5-8x slower under load, at batch 1 as at batch 16, where 1 thread stays steady. Only
    layers big enough (large batches) to amortize that risk get threads, and only half the cores,
    leaving room for everything else.
    """
    if cpu_threads is not None:
        return cpu_threads
    return max(1, cores() // 2) if macs_per_layer >= _THREADED_MACS else 1


class _BlasCap:
    """The process-wide BLAS thread cap (one setting for the whole BLAS library) while contexts run.

    The first context (or build) to start sets it; others starting while it runs keep it, and the
    library's own setting comes back when the last one finishes. The setting never changes while a
    BLAS call may be running: OpenBLAS's set_num_threads during another thread's call crashed the
    process (a dask sweep of two engines at once: SIGSEGV in a convolution about one run in ten).
    The libraries' own get/set calls are used directly, and only when the setting changes:
    threadpoolctl's limit()/info() cost ~40 us a run, a tenth of a small model's whole inference.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._running = 0
        self._saved = ()
        self._libs = None

    def enter(self, threads: int) -> None:
        with self._lock:
            if self._libs is None:
                self._libs = threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
            if self._running == 0:
                self._saved = [lib.get_num_threads() for lib in self._libs]
                self._limit(threads)
            self._running += 1

    def exit(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                for lib, saved in zip(self._libs, self._saved):
                    if saved is not None and lib.get_num_threads() != saved:
                        lib.set_num_threads(saved)

    def _limit(self, threads: int) -> None:
        for lib in self._libs:
            if lib.get_num_threads() != threads:
                lib.set_num_threads(threads)


_CAP = _BlasCap()


# ------------------------------------------------------------------------------------- tactics
def select_tactics(net, precisions: dict, cfg, log) -> dict:
    """Per layer, the fastest way its kernel computes at the opt shapes (timed when there is a choice).

    Timings go to log["timings"][layer] = {tactic: ms}; builder_optimization_level 0 skips timing.
    """
    shapes, threads = _opt_shapes(net, cfg)
    chosen = {}
    _CAP.enter(threads)  # as a context does: other engines may be running in other threads
    try:
        for layer in net.layers:
            chosen[layer.name] = _choose(net, layer, shapes, cfg, threads, log)
    finally:
        _CAP.exit()
    log["blas_threads"] = threads
    return chosen


def _opt_shapes(net, cfg) -> tuple:
    """({tensor: shape} at the first profile's opt shapes, BLAS threads for that size)."""
    from ...builder.profiles import resolve_profiles
    from ...passes.infer import infer
    from ...tools.flops import layer_flops

    concrete = net.copy()
    try:
        for name, triple in resolve_profiles(net, cfg)[0].items():
            concrete.tensors[name].shape = tuple(triple[1])
        infer(concrete)
    except WorkbenchError:
        return {}, blas_threads(cfg.cpu_threads, 0)
    shapes = {name: t.shape for name, t in concrete.tensors.items()}
    macs = max((layer_flops(layer, [shapes.get(n) for n in layer.inputs], [shapes.get(n) for n in layer.outputs])
                or 0 for layer in net.layers), default=0) / 2
    return shapes, blas_threads(cfg.cpu_threads, macs)


def _choose(net, layer, shapes: dict, cfg, threads: int, log) -> str:
    known = tactics_for(layer.op, layer.domain)
    in_shapes = [shapes.get(n) if n else None for n in layer.inputs]
    if known is None or not all(_static(s) for s in in_shapes[:2]):
        return DEFAULT_TACTIC
    fn, attrs = resolve(layer)
    candidates = known.applicable(in_shapes, attrs)
    if len(candidates) == 1 or cfg.builder_optimization_level == 0:
        return candidates[0]
    args = [_sample(net, n, s) for n, s in zip(layer.inputs, in_shapes)]
    # one BLAS thread: all the work is this thread's, and its CPU time ignores other processes
    clock = time.thread_time if threads == 1 else time.perf_counter
    timings = _time(fn, args, attrs, candidates, cfg.timing_iterations, clock)
    log["timings"][layer.name] = timings
    return min(timings, key=timings.get)


def _static(shape) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def _sample(net, name: str, shape):
    """The layer input for timing: the weight itself, else random data of the tensor's shape (batch capped)."""
    if not name:
        return None
    if name in net.weights:
        return np.asarray(net.weights[name])
    dtype = np_dtype(net.tensors[name].dtype)
    dtype = np.dtype(np.float32) if dtype.name in LOW_FLOATS else dtype
    shape = (min(shape[0], _TIMING_BATCH), *shape[1:]) if shape else shape
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _time(fn, args, attrs: dict, methods, iterations: int, clock) -> dict:
    """{method: best time in ms}; the methods take turns, so that bursts of load hit them alike.

    Rounds stop early once a layer has had _TIMING_BUDGET_S (at least two timed rounds each). A method
    that fails on these inputs scores infinity (the layer's own error surfaces when it runs).
    """
    best = dict.fromkeys(methods, float("inf"))
    failed = set()
    start = time.perf_counter()
    for i in range(iterations + 1):  # the first round warms up
        for m in (m for m in methods if m not in failed):
            t0 = clock()
            try:
                fn(*args, **attrs, method=m)
            except Exception:  # noqa: BLE001 - whatever a kernel raises on these inputs, it is not chosen
                failed.add(m)
                continue
            if i:
                best[m] = min(best[m], clock() - t0)
        if i >= 2 and time.perf_counter() - start > _TIMING_BUDGET_S:
            break
    return {m: round(t * 1e3, 4) for m, t in best.items()}


# ------------------------------------------------------------------------------------- execution
class Step:
    """One layer, ready to run: its kernel, attributes, and what to free afterwards."""

    __slots__ = ("layer", "fn", "attrs", "inputs", "outputs", "dtypes", "free", "upcast", "tf32", "lowp", "scope",
                 "size_limit", "named", "plain", "cast")

    def __init__(self, layer, fn, attrs, dtypes, free, upcast, tf32, lowp, scope=None, size_limit=None):
        self.layer, self.fn, self.attrs = layer, fn, attrs
        self.inputs, self.outputs = layer.inputs, layer.outputs
        self.dtypes, self.free, self.tf32, self.lowp = dtypes, free, tf32, lowp
        self.upcast = upcast  # per input: a float32 tensor of the model maybe held in fp16/bf16 (None: no such input)
        self.size_limit = size_limit  # bytes, for layers whose output size depends on input values
        self.scope = scope  # for kernels with subgraphs: [(outer name its subgraphs read, is float32)]
        self.named = named_outputs(layer)
        # decided once here, not per run: inputs go to the kernel as they are (no check, rounding or upcast)
        self.plain = size_limit is None and lowp is None and upcast is None and not tf32
        self.cast = list(zip(self.outputs, dtypes))  # (output name, its storage dtype)

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
        if self.plain:
            return args
        if self.size_limit is not None:
            check_run_time_sizes(self.layer, args, self.size_limit)
        if self.lowp is not None:
            args = [a.astype(self.lowp) if a is not None and a.dtype == np.float32 else a for a in args]
        if self.upcast is not None:
            args = [upcast(a) if f32 else a for a, f32 in zip(args, self.upcast)]
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
        self.threads = engine.config.get("cpu_threads") or engine.report.get("blas_threads", 1)

    def run(self, feeds: dict, on_layer=None) -> dict:
        _CAP.enter(self.threads)
        # NumPy reads strided and broadcast operands through buffers; smaller ones run the window
        # kernels' row-wise ufuncs ~6% faster end to end (MobileNetV2). Thread-local, restored below.
        bufsize = np.setbufsize(_UFUNC_BUFFER)
        try:
            return self._run(feeds, on_layer)
        finally:
            np.setbufsize(bufsize)
            _CAP.exit()

    def _run(self, feeds: dict, on_layer=None) -> dict:
        env = dict(self.weights)
        env.update(feeds)
        pop = env.pop
        for step in self.steps:
            outs = call(step.fn, step.attrs if step.scope is None else step.keywords(env), step.layer,
                        step.arguments(env), step.named)
            for (name, dtype), value in zip(step.cast, outs):
                if name:
                    env[name] = value if value is None or value.dtype == dtype else value.astype(dtype)
            if on_layer is not None:
                on_layer(step.layer, env)
            for name in step.free:
                pop(name, None)
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
        attrs = _with_tactic(layer, attrs, engine.tactics.get(layer.name, DEFAULT_TACTIC))
        dtypes = [np_dtype(engine.storage_dtypes.get(o, net.tensors[o].dtype)) if o else None
                  for o in layer.outputs]
        # an output nobody reads (and no graph output) is dead at once
        free = [n for n in dict.fromkeys(layer.reads() + layer.outputs)
                if n and n not in keep and last_use.get(n, -1) <= i]
        precision = engine.precisions.get(layer.name, "fp32")
        tf32 = precision == "tf32" and layer.op in MATMUL_OPS
        lowp = np_dtype(STORAGE[precision]) if precision in STORAGE else None
        scope = [(n, net.tensors[n].dtype == "float32") for n in layer.outer_reads()] if needs_scope(layer) else None
        guarded = layer.op in VALUE_SHAPED_OPS and layer.domain in ("", "ai.onnx")
        steps.append(Step(layer, fn, attrs, dtypes, free, _upcasts(engine, layer, lowp), tf32, lowp, scope,
                          limit if guarded else None))
    return steps


def _upcasts(engine, layer, lowp):
    """Per input, is it a float32 tensor of the model; None when none can arrive narrower than float32."""
    net = engine.network
    f32 = [bool(n) and net.tensors[n].dtype == "float32" for n in layer.inputs]
    stored = [np.asarray(net.weights[n]).dtype.name if n in net.weights else engine.storage_dtypes.get(n, "")
              for n in layer.inputs]
    narrow = any(f and s in LOW_FLOATS for f, s in zip(f32, stored))
    return f32 if lowp is not None or narrow else None


def _with_tactic(layer, attrs: dict, tactic: str) -> dict:
    if tactic == DEFAULT_TACTIC:
        return attrs
    known = tactics_for(layer.op, layer.domain)
    if known is None or tactic not in known.names:
        raise UnsupportedError(f"layer {layer.name!r}: tactic {tactic!r} is unknown to this workbench's CPU "
                               f"kernel of {layer.op}; rebuild the engine with this version")
    return {**attrs, "method": tactic}


def make_runner(engine) -> Runner:
    return Runner(engine)
