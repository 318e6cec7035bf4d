"""The CUDA runtime: kernels per input shape, CUDA-graph capture and replay, profiler, memory report.

One Runner per execution context: its own stream and memory pool, so contexts run concurrently;
the engine's weights (and weights re-laid out for a tactic) are uploaded once and shared.
Kernels are rebuilt from the plan's recipes for each new input shape; the first run at a shape runs
eagerly, the second captures the whole network into a CUDA graph (when cuda_graph is on and every
kernel is capturable), and later runs only copy the inputs in and replay it.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading

import numpy as np

from ...dtypes import np_dtype
from ...errors import ExecutionError
from ..cpu.evaluate import resolve
from .arena import Arena, Recorder
from .device import Device, Shared, cp, device_dtype, info, is_device, to_device, to_host
from .site import make_site
from .tactics import TACTICS, load_all

_SHARED_LOCK = threading.Lock()


def shared_for(engine) -> Shared:
    """The engine's device weights, uploaded by the first context and shared by the others."""
    with _SHARED_LOCK:
        shared = engine._runner_cache.get("cuda")
        if shared is None:
            shared = engine._runner_cache["cuda"] = Shared(engine.network.weights)
        return shared


class Step:
    __slots__ = ("layer", "attrs", "tactic", "params", "precision", "out_dtypes", "free")

    def __init__(self, layer, attrs, tactic, params, precision, out_dtypes, free):
        self.layer, self.attrs, self.tactic, self.params = layer, attrs, tactic, params
        self.precision, self.out_dtypes, self.free = precision, out_dtypes, free


class Replay(Exception):
    """A captured run no longer matches (an eager step gave other shapes or host values): run eagerly."""


class Captured:
    """The network at one input signature as CUDA graphs, with the steps that cannot be captured between.

    parts: ("graph", graph) or ("eager", kernel, args, outs): an eager step reruns on the very arrays it
    saw at capture time and its results are copied into the capture-time outputs, which the following
    graphs read. With every kernel capturable this is one graph for the whole network.
    """

    def __init__(self, parts: list, inputs: dict, outputs: dict, pool, arena=None):
        self.parts, self.inputs, self.outputs, self.pool, self.arena = parts, inputs, outputs, pool, arena

    @property
    def graphs(self) -> int:
        return sum(1 for p in self.parts if p[0] == "graph")

    def replay(self, feeds: dict, stream) -> dict:
        for name, value in feeds.items():
            if is_device(value):
                self.inputs[name][...] = value
            else:  # straight from the host into the graph's input buffer
                self.inputs[name].set(np.ascontiguousarray(value, dtype=self.inputs[name].dtype), stream)
        for part in self.parts:
            if part[0] == "graph":
                part[1].launch(stream)
            else:
                _, kernel, args, outs = part
                for new, old in zip(kernel(args), outs):
                    _refill(old, new)
        return {n: o.copy() if is_device(o) else o for n, o in self.outputs.items()}


def _refill(old, new) -> None:
    if old is None or new is None:
        return
    if tuple(old.shape) != tuple(new.shape) or is_device(old) != is_device(new):
        raise Replay("an uncaptured step changed its output's shape")
    if is_device(old):
        old[...] = new
    elif not np.array_equal(old, new):
        raise Replay("an uncaptured step produced other host values than at capture")


class HostView(dict):
    """The environment handed to on_layer callbacks: device arrays are copied to NumPy when read."""

    def __getitem__(self, key):
        return to_host(super().__getitem__(key))

    def get(self, key, default=None):
        return self[key] if key in self else default


class Runner:
    def __init__(self, engine):
        load_all()
        self.engine = engine
        net = engine.network
        self.shared = shared_for(engine)
        self.dev = Device(self.shared)
        self.dev.workspace_limit = engine.config.get("workspace")
        self.use_graphs = bool(engine.config.get("cuda_graph", True))
        self.use_arena = os.environ.get("WORKBENCH_CUDA_ARENA", "1") != "0"  # off: graphs keep CuPy's pool
        self.outputs = list(net.outputs)
        self.out_dtypes = {n: device_dtype(net.tensors[n].dtype) for n in net.outputs}
        self.steps = self._steps(engine)
        self.kernels: dict = {}
        self.graphs: dict = {}
        self.seen: set = set()
        self.notes: list = []
        self.last_profile = None
        built = (engine.device or {}).get("arch")
        if built and built != info()["arch"]:
            self.notes.append(f"plan built on {built}, running on {info()['arch']}: generated kernels are "
                              f"recompiled for this GPU; rebuild for tactics timed here")

    # ---------------------------------------------------------------------------- set-up
    @staticmethod
    def _steps(engine) -> list:
        net = engine.network
        params = engine.tactic_params
        keep = set(net.outputs) | set(net.inputs) | set(net.weights)
        last_use = {n: i for i, layer in enumerate(net.layers) for n in layer.reads()}
        steps = []
        for i, layer in enumerate(net.layers):
            _, attrs = resolve(layer)
            dtypes = [(engine.storage_dtypes.get(o) or net.tensors[o].dtype) if o else "" for o in layer.outputs]
            free = [n for n in set(layer.reads()) | set(layer.outputs)
                    if n and n not in keep and last_use.get(n, -1) <= i]
            steps.append(Step(layer, attrs, engine.tactics.get(layer.name, "generic"), params.get(layer.name, {}),
                              engine.precisions.get(layer.name, "fp32"), dtypes, free))
        return steps

    def _kernel(self, i: int, args: list):
        sig = tuple(None if a is None else (a.shape, a.dtype.str, is_device(a)) for a in args)
        kernel = self.kernels.get((i, sig))
        if kernel is None:
            kernel = self.kernels[(i, sig)] = self._prepare(self.steps[i], args)
        return kernel

    def _prepare(self, step, args: list):
        """The step's kernel for these arguments: its recipe, else the tactic's default, else a fallback."""
        net = self.engine.network
        site = make_site(step.layer, step.attrs, args, step.precision, step.out_dtypes, net.weights, net.opset)
        tries = [(step.tactic, step.params), (step.tactic, {}), ("generic", {}), ("host", {})]
        errors = []
        for name, params in tries:
            shared_key = ("kernel", name, json.dumps(params, sort_keys=True, default=str), site.key())
            try:
                return self.dev.cached(shared_key, lambda: TACTICS[name].prepare(site, params, self.dev))
            except Exception as e:  # noqa: BLE001 - try the next, slower but surer, tactic
                errors.append(f"{name}: {type(e).__name__}: {e}")
        raise ExecutionError(f"layer {step.layer.name!r} ({step.layer.op}): no tactic runs on inputs "
                             f"{[getattr(a, 'shape', None) for a in args]}: {'; '.join(errors)}")

    # ---------------------------------------------------------------------------- execution
    def _call(self, i: int, kernel, args: list) -> list:
        try:
            return kernel(args)
        except Exception as e:  # noqa: BLE001
            if kernel.label == "host" or cp.cuda.get_current_stream().is_capturing():
                raise
            step = self.steps[i]
            self.notes.append(f"layer {step.layer.name!r}: {kernel.label} failed ({type(e).__name__}: {e}); "
                              f"running it through the host from now on")
            net = self.engine.network
            site = make_site(step.layer, step.attrs, args, step.precision, step.out_dtypes, net.weights, net.opset)
            host = TACTICS["host"].prepare(site, {}, self.dev)
            sig = tuple(None if a is None else (a.shape, a.dtype.str, is_device(a)) for a in args)
            self.kernels[(i, sig)] = host
            return host(args)

    def _forward(self, env: dict, on_layer=None, events=None, used=None) -> dict:
        stream = self.dev.stream
        for i, step in enumerate(self.steps):
            args = [env[n] if n else None for n in step.layer.inputs]
            kernel = self._kernel(i, args)
            if used is not None:
                used.append(kernel)
            if events is not None:
                events[i][0].record(stream)
            outs = self._call(i, kernel, args)
            if events is not None:
                events[i][1].record(stream)
            for name, value in zip(step.layer.outputs, outs):
                if name:
                    env[name] = value
            if on_layer is not None:
                on_layer(step.layer, HostView(env))
            for name in step.free:
                env.pop(name, None)
        return {n: env[n] for n in self.outputs}

    def _stage(self, feeds: dict) -> dict:
        return {n: to_device(v) for n, v in feeds.items()}

    def _env(self, dev_feeds: dict) -> dict:
        env = dict(self.shared.weights)
        env.update(dev_feeds)
        return env

    def _execute(self, feeds: dict, on_layer=None) -> dict:
        sig = tuple(sorted((n, tuple(v.shape), device_dtype(v.dtype).str) for n, v in feeds.items()))
        if on_layer is None and self.use_graphs:
            entry = self.graphs.get(sig)
            if entry is None and sig in self.seen:
                entry = self.graphs[sig] = self._capture(self._stage(feeds)) or False
            if entry:
                try:
                    return entry.replay(feeds, self.dev.stream)
                except Replay as e:
                    self.notes.append(f"CUDA graphs dropped for {sig}: {e}")
                    self.graphs[sig] = False
            self.seen.add(sig)
        return self._forward(self._env(self._stage(feeds)), on_layer)

    def _capture(self, dev_feeds: dict):
        """A Captured run for this input signature, or None (with a note) when nothing can be captured.

        A first run (recorded when the arena is on) prepares every kernel; the capture then places
        each allocation where the recording's plan put it (see arena.py).
        """
        pool = cp.cuda.MemoryPool()  # the graphs' own memory: nothing else may reuse its addresses
        stream = self.dev.stream
        with self.dev.active(pool):
            static = {n: a.copy() for n, a in dev_feeds.items()}
        used: list = []
        recorder = Recorder(pool) if self.use_arena else None
        with self.dev.active(pool, recorder.malloc if recorder else None):
            self._forward(self._env(static), used=used)  # prepares every kernel and warms the pool
        if not any(k.graph_safe for k in used):
            return None
        arena = Arena(recorder.plan(), pool) if recorder and all(k.graph_safe for k in used) else None
        with self.dev.active(pool, arena.malloc if arena else None):
            captured = self._capture_steps(static, stream)
        if captured is None:
            return None
        parts, outputs = captured
        self.dev.pool.free_all_blocks()  # the eager runs' activations: from now on the graphs' pool holds them
        if arena is not None:
            pool.free_all_blocks()  # the recorded run's blocks: the arena replaces them
            self.notes.append(_arena_note(arena))
        eager = sorted({p[1].label for p in parts if p[0] == "eager"})
        if eager:
            self.notes.append(f"CUDA graphs with {len(eager)} uncaptured tactic(s) between them: {eager}")
        return Captured(parts, static, outputs, pool, arena)

    def _capture_steps(self, static: dict, stream):
        """(parts, outputs) of one run captured segment by segment, or None (with a note) on failure."""
        env, parts, open_ = self._env(static), [], False
        try:
            for i, step in enumerate(self.steps):
                args = [env[n] if n else None for n in step.layer.inputs]
                kernel = self._kernel(i, args)
                if kernel.graph_safe and not open_:
                    stream.begin_capture()
                    open_ = True
                elif not kernel.graph_safe and open_:
                    parts.append(("graph", self._end_segment(stream)))
                    open_ = False
                outs = kernel(args)
                if not kernel.graph_safe:
                    parts.append(("eager", kernel, args, outs))
                for name, value in zip(step.layer.outputs, outs):
                    if name:
                        env[name] = value
                for name in step.free:
                    env.pop(name, None)
            if open_:
                parts.append(("graph", self._end_segment(stream)))
                open_ = False
        except Exception as e:  # noqa: BLE001
            if open_:
                with contextlib.suppress(Exception):
                    stream.end_capture()
            self.notes.append(f"no CUDA graph: capture failed ({type(e).__name__}: {e}); running eagerly")
            return None
        return parts, {n: env[n] for n in self.outputs}

    @staticmethod
    def _end_segment(stream):
        """End the open capture and launch it, so the eager step after it sees computed data."""
        graph = stream.end_capture()
        graph.launch(stream)
        return graph

    def _final(self, name: str, value, device: bool):
        want = self.out_dtypes[name]
        if device:
            value = to_device(value)
            return value if value.dtype == want else value.astype(want)
        host = to_host(value)
        logical = np_dtype(self.engine.network.tensors[name].dtype)
        return host.astype(logical, copy=False)

    # ---------------------------------------------------------------------------- public
    def run(self, feeds: dict, on_layer=None) -> dict:
        """Outputs for `feeds`: NumPy in, NumPy out; any CuPy input makes every output a CuPy array."""
        device = any(is_device(v) for v in feeds.values())
        caller = cp.cuda.get_current_stream()
        if device:
            self.dev.stream.wait_event(caller.record())
        with self.dev.active():
            outs = self._execute(feeds, on_layer)
            result = {n: self._final(n, outs[n], device) for n in self.outputs}
        if device:
            caller.wait_event(self.dev.stream.record())
        return result

    def run_async(self, feeds: dict, stream=None) -> dict:
        """Enqueue a run after the work already on `stream` and make `stream` wait for it; no host sync.

        Returns CuPy arrays that are ready in `stream` order (NumPy inputs are uploaded first).
        """
        stream = stream or cp.cuda.get_current_stream()
        self.dev.stream.wait_event(stream.record())
        with self.dev.active():
            outs = self._execute(feeds)
            result = {n: self._final(n, outs[n], True) for n in self.outputs}
        stream.wait_event(self.dev.stream.record())
        return result

    def profile(self, feeds: dict, runs: int = 10) -> list:
        """Per-layer device time (median of `runs` eager runs, CUDA events around each layer)."""
        with self.dev.active():
            dev_feeds = self._stage(feeds)
            kernels: list = []
            self._forward(self._env(dev_feeds), used=kernels)
            samples = [[] for _ in self.steps]
            for _ in range(max(1, runs)):
                events = [(cp.cuda.Event(), cp.cuda.Event()) for _ in self.steps]
                self._forward(self._env(dev_feeds), events=events)
                self.dev.synchronize()
                for i, (a, b) in enumerate(events):
                    samples[i].append(cp.cuda.get_elapsed_time(a, b))
        rows = []
        for step, times, kernel in zip(self.steps, samples, kernels):
            rows.append({"layer": step.layer.name, "type": step.layer.op, "precision": step.precision,
                         "tactic": step.tactic, "kernel": kernel.label if kernel else "",
                         "ms": float(np.median(times))})
        self.last_profile = rows
        return rows

    def memory(self) -> dict:
        """Device bytes: weights (shared by contexts), activations, workspace, and the build's plan."""
        workspace = self.dev.workspace_bytes()
        graphs = sum(e.pool.total_bytes() for e in self.graphs.values() if e)
        free, total = cp.cuda.runtime.memGetInfo()
        return {"weights_bytes": self.shared.nbytes(),
                "activations_bytes": int(self.dev.pool.total_bytes() - workspace + graphs),
                "workspace_bytes": int(workspace),
                "planned_arena_bytes": int(getattr(self.engine.memory, "arena_bytes", 0)),
                "graph_arena_bytes": int(sum(e.arena.nbytes for e in self.graphs.values() if e and e.arena)),
                "cuda_graphs": sum(e.graphs for e in self.graphs.values() if e),
                "device_used_bytes": int(total - free), "device_total_bytes": int(total)}


def _arena_note(arena) -> str:
    plan = arena.plan
    note = (f"CUDA graph activations in one planned arena of {plan.arena_bytes / 2**20:.1f} MiB "
            f"({len(plan.sizes)} allocations, {plan.naive_bytes / 2**20:.1f} MiB without reuse)")
    if arena.diverged is not None:
        note += f"; the capture left the recorded allocation order at allocation {arena.diverged}: the pool served the rest"
    return note
