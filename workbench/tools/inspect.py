"""Engine inspection, TREx-style: one row per layer and an engine summary, from the plan alone.

    >>> report = engine.inspect()                       # analysis only: nothing runs
    >>> report.to_dataframe().sort_values("flops")
    >>> timed = report.profile(iterations=20)           # adds measured time and share per layer
    >>> timed.to_json()                                 # {"Layers": [...], "Bindings": [...], "Summary": {...}}

Shapes, FLOPs and bytes are at the opt shapes of the engine's first optimization profile.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..errors import WorkbenchError
from . import device
from .flops import layer_flops, tensor_nbytes
from .inputs import make_inputs
from .results import Result, pandas
from .runners import EngineRunner


def concrete_shapes(engine, profile: int = 0) -> tuple:
    """({tensor: shape} at the profile's opt shapes, note or None when they could not be inferred)."""
    from ..passes.infer import infer

    net = engine.network.copy()
    for name, triple in engine.profiles[profile].items():
        net.tensors[name].shape = tuple(triple[1])
    try:
        infer(net)
        note = None
    except WorkbenchError as e:
        net, note = engine.network, f"shapes at the opt profile could not be inferred ({e}); declared shapes shown"
    return {name: t.shape for name, t in net.tensors.items()}, note


def _dtype(engine, name: str) -> str:
    net = engine.network
    if name in net.weights:
        return np.asarray(net.weights[name]).dtype.name
    return engine.storage_dtypes.get(name, net.tensors[name].dtype)


def _shape(shapes: dict, name: str):
    shape = shapes.get(name)
    return tuple(shape) if shape is not None else None


def layer_row(engine, layer, shapes: dict) -> dict:
    """The analysis of one layer: what it is, how it runs, and what it costs at the given shapes."""
    net = engine.network
    acts = [n for n in layer.inputs if n and n not in net.weights]
    weights = [n for n in layer.inputs if n in net.weights]
    outs = [n for n in layer.outputs if n]
    in_shapes = [_shape(shapes, n) if n else None for n in layer.inputs]
    out_shapes = [_shape(shapes, n) for n in layer.outputs]
    nbytes = [tensor_nbytes(_shape(shapes, n), _dtype(engine, n)) for n in acts + weights + outs]
    weight_bytes = sum(np.asarray(net.weights[n]).nbytes for n in weights)
    flops = layer_flops(layer, in_shapes, out_shapes)
    moved = sum(nbytes) if None not in nbytes else None
    return {"name": layer.name, "type": layer.op, "fused": list(layer.fused) or [layer.name],
            "n_fused": max(len(layer.fused), 1), "tactic": engine.tactics.get(layer.name, ""),
            "precision": engine.precisions.get(layer.name, "fp32"),
            "in_dtypes": [_dtype(engine, n) for n in acts], "out_dtypes": [_dtype(engine, n) for n in outs],
            "inputs": acts, "input_shapes": [_shape(shapes, n) for n in acts], "weights": weights,
            "outputs": outs, "output_shapes": [_shape(shapes, n) for n in outs], "flops": flops,
            "bytes": moved, "weight_bytes": int(weight_bytes),
            "intensity": flops / moved if flops is not None and moved else None,
            "time_ms": None, "share": None}


def _histogram(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _summary(engine, rows: list, note) -> dict:
    mem = engine.memory
    known = [r["flops"] for r in rows if r["flops"] is not None]
    return {"name": engine.network.name, "backend": engine.backend, "device": engine.device,
            "layers": len(rows), "source_layers": sum(r["n_fused"] for r in rows),
            "inputs": [(s.name, s.dtype, s.shape) for s in engine.inputs],
            "outputs": [(s.name, s.dtype, s.shape) for s in engine.outputs],
            "profiles": [{k: [list(s) for s in v] for k, v in p.items()} for p in engine.profiles],
            "flops": sum(known), "flops_complete": len(known) == len(rows),
            "weight_bytes": int(mem.weight_bytes), "activation_bytes": int(mem.arena_bytes),
            "io_bytes": int(mem.io_bytes), "workspace_limit": engine.config.get("workspace"),
            "precisions": _histogram(r["precision"] for r in rows), "ops": _histogram(r["type"] for r in rows),
            "tactics": _histogram(r["tactic"] for r in rows), "build_seconds": engine.report.get("build_seconds"),
            "note": note}


@dataclass
class EngineInspection(Result):
    """Per-layer rows and an engine summary; `profile()` adds measured times."""

    engine: object
    layers: list
    summary: dict

    def to_dataframe(self):
        """One row per layer (name, type, fused, tactic, precision, dtypes, shapes, FLOPs, bytes, time, share)."""
        return pandas().DataFrame(self.layers)

    def to_dict(self) -> dict:
        """TensorRT inspector-style: {"Layers": [...], "Bindings": [...], "Summary": {...}}."""
        def tensor(name, shape):
            return {"Name": name, "Dimensions": list(shape) if shape is not None else None,
                    "Format/Datatype": _dtype(self.engine, name)}

        layers = [{"Name": r["name"], "LayerType": r["type"],
                   "Inputs": [tensor(n, s) for n, s in zip(r["inputs"], r["input_shapes"])],
                   "Outputs": [tensor(n, s) for n, s in zip(r["outputs"], r["output_shapes"])],
                   "Weights": [tensor(n, np.shape(self.engine.network.weights[n])) for n in r["weights"]],
                   "TacticName": r["tactic"], "Precision": r["precision"], "Metadata": " + ".join(r["fused"]),
                   "FLOPs": r["flops"], "BytesMoved": r["bytes"], "WeightBytes": r["weight_bytes"],
                   "TimeMs": r["time_ms"], "Share": r["share"]} for r in self.layers]
        bindings = [s.name for s in self.engine.inputs] + [s.name for s in self.engine.outputs]
        return {"Layers": layers, "Bindings": bindings, "Summary": self.summary}

    def profile(self, iterations: int = 10, inputs: dict | None = None, warmup: int = 2) -> "EngineInspection":
        """A copy with time_ms (see profile_layers) and share of the layers' total per layer."""
        times, total = profile_layers(self.engine, iterations, inputs, warmup)
        layer_total = sum(times.values())
        rows = [{**r, "time_ms": times[r["name"]], "share": times[r["name"]] / layer_total if layer_total else None}
                for r in self.layers]
        summary = {**self.summary, "total_time_ms": total, "layer_time_ms": layer_total,
                   "profile_iterations": iterations}
        return replace(self, layers=rows, summary=summary)

    def __str__(self) -> str:
        s = self.summary
        return (f"{s['name']}: {s['layers']} layers ({s['source_layers']} before fusion) on {s['backend']}, "
                f"{s['flops'] / 1e6:.2f} MFLOP, weights {s['weight_bytes'] / 2**20:.2f} MiB, activations "
                f"{s['activation_bytes'] / 2**20:.2f} MiB, precisions {s['precisions']}")


def profile_layers(engine, iterations: int = 10, inputs: dict | None = None, warmup: int = 2) -> tuple:
    """({layer: ms}, total ms) from timestamps taken after every layer (synchronized on a GPU).

    Means over the faster half of the iterations (by total time): a run preempted on a busy machine
    is dropped whole, so the layer times still add up to the total. On a GPU whose backend has a
    profiler, layer times are its CUDA-event device times instead (they sum to less than the host total).
    """
    runner = EngineRunner(engine)
    feeds = runner.to_device(runner.check_feeds(inputs) if inputs is not None else make_inputs(runner))
    names = [layer.name for layer in engine.network.layers]
    runs = [_timed_run(runner, feeds, names) for _ in range(warmup + iterations)][warmup:]
    totals = np.array([total for total, _ in runs])
    quiet = totals <= np.median(totals)
    per_layer = dict(zip(names, np.mean([layers for (_, layers), q in zip(runs, quiet) if q], axis=0).tolist()))
    profiler = getattr(runner.backend_runner(), "profile", None)
    if runner.device == "cuda" and profiler is not None:
        # a GPU backend's own profiler times each layer with CUDA events: device time, no host sync gaps
        per_layer.update({row["layer"]: row["ms"] for row in profiler(feeds, iterations)})
    return per_layer, float(totals[quiet].mean())


def _timed_run(runner, feeds: dict, names: list) -> tuple:
    """(total ms, [ms per layer in `names` order]) of one run."""
    lib = runner.gpu_lib
    stamps = {}

    def stamp(layer, env):
        device.synchronize(lib)
        stamps[layer.name] = time.perf_counter()

    t0 = time.perf_counter()
    runner.run_with_layers(feeds, stamp)
    device.synchronize(lib)
    total = (time.perf_counter() - t0) * 1e3
    ends = [stamps.get(name) for name in names]
    starts = [t0] + ends[:-1]
    return total, [(end - start) * 1e3 if end is not None and start is not None else 0.0
                   for start, end in zip(starts, ends)]


def inspect_engine(engine, profile: bool = False, iterations: int = 10, inputs: dict | None = None) -> EngineInspection:
    """Analyse an Engine (or a plan file path) layer by layer; profile=True also runs it to time each layer.

    >>> inspect_engine(engine).to_dataframe()
    """
    if not hasattr(engine, "network"):
        engine = EngineRunner(engine).engine
    shapes, note = concrete_shapes(engine)
    rows = [layer_row(engine, layer, shapes) for layer in engine.network.layers]
    result = EngineInspection(engine, rows, _summary(engine, rows, note))
    return result.profile(iterations, inputs) if profile else result
