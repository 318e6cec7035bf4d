"""Every call the notebook workbench makes into the builder, the tools and quantization, in one place.

The session (session.py) holds state and never imports the tools itself: when a tool's API moves,
only this module changes. Each function is one step of the workflow and returns plain data
(dicts, DataFrames, arrays) or the object the next step needs.

    >>> net, source = load_network(wb.zoo.digits().model)
    >>> engine = build_engine(net, make_config({"device": "cpu", "precision": "fp16", "batch": 8}))
    >>> row = {**bench_row(bench(engine, 8, seconds=0.5)), **compare_row(compare(engine, baseline_for(source), 8))}
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import WorkbenchError
from ..quant.options import CALIBRATORS

QUANTIZED = ("int8", "fp8")
DYNAMIC_BATCH_LIMIT = 256   # the batch slider's top when the model leaves the batch dim free
EVAL_SAMPLES = 512          # compare on at most this many labelled samples (keeps a build interactive)


# ---------------------------------------------------------------------------------- the model
def load_network(model) -> tuple:
    """(Network, source) from a path, bytes, onnx.ModelProto or a Network; source feeds the baseline."""
    from ..ir.network import Network
    from ..parsers.onnx import load_onnx

    if isinstance(model, Network):
        return model, model.metadata.get("source")
    net = load_onnx(model)
    return net, os.fspath(model) if isinstance(model, (str, os.PathLike)) else model


def _concrete(net, batch: int = 1):
    """A copy of `net` with a free batch dim set to `batch` and shapes inferred (None when that fails)."""
    from ..passes.infer import infer

    copy = net.copy()
    for name in copy.inputs:
        shape = copy.tensors[name].shape
        if shape and not isinstance(shape[0], int):
            copy.tensors[name].shape = (batch, *shape[1:])
    try:
        infer(copy)
    except WorkbenchError:
        return None
    return copy


def _flops(net) -> int | None:
    """FLOPs of one sample (a multiply-add counts 2), from the tools' cost model; None when unknown."""
    try:
        from ..tools.flops import layer_flops
    except ImportError:
        return None
    concrete = _concrete(net)
    if concrete is None:
        return None
    shape = lambda n: concrete.tensors[n].shape if n and n in concrete.tensors else None  # noqa: E731
    counts = [layer_flops(layer, [shape(n) for n in layer.inputs], [shape(n) for n in layer.outputs])
              for layer in concrete.layers]
    return int(sum(c for c in counts if c is not None)) if any(c is not None for c in counts) else None


def model_summary(net) -> dict:
    """What the model panel shows: inputs/outputs, op-type counts, parameter count and bytes, FLOPs."""
    io = lambda names: [(n, net.tensors[n].dtype, net.tensors[n].shape) for n in names]  # noqa: E731
    weights = [np.asarray(w) for w in net.weights.values()]
    return {"name": net.name, "inputs": io(net.inputs), "outputs": io(net.outputs),
            "ops": dict(Counter(layer.op for layer in net.layers).most_common()),
            "layers": len(net.layers), "params": int(sum(w.size for w in weights)),
            "param_bytes": int(sum(w.nbytes for w in weights)), "flops": _flops(net)}


def batch_range(net) -> tuple:
    """(smallest, largest) batch the model allows: 1..DYNAMIC_BATCH_LIMIT when dim 0 is free, else fixed."""
    firsts = [net.tensors[n].shape[0] for n in net.inputs if net.tensors[n].shape]
    fixed = [d for d in firsts if isinstance(d, int)]
    if fixed:
        return fixed[0], fixed[0]
    return 1, DYNAMIC_BATCH_LIMIT


# ---------------------------------------------------------------------------------- devices
def available_devices() -> list:
    """'cpu', plus 'cuda' when CuPy sees a GPU."""
    from ..backends import cuda_available

    return ["cpu", "cuda"] if cuda_available() else ["cpu"]


def _quant_available() -> bool:
    try:
        from .. import quant

        return hasattr(quant, "EntropyCalibrator")
    except (ImportError, AttributeError):
        return False


def supported_precisions(device: str) -> list:
    """The precisions a build on `device` may use: the backend's own list when it gives one.

    The CPU backend emulates tf32/fp16/bf16 faithfully, and int8 and fp8 (E4M3) arithmetic; those two need
    workbench.quant.
    """
    from ..backends import get_backend

    info = get_backend(device).device_info()
    listed = info.get("precisions") or getattr(get_backend(device), "PRECISIONS", None)
    precisions = list(listed) if listed else ["fp32", "tf32", "fp16", "bf16", "int8", "fp8"]
    return [p for p in precisions if p not in QUANTIZED or _quant_available()]


# ---------------------------------------------------------------------------------- building
def make_config(options: dict, calibrator=None):
    """A BuilderConfig from the session's options (device, precision, batch, workspace, opt_level,
    timing_iterations); the batch becomes max_batch when the model's batch dim is free."""
    from ..builder.config import BuilderConfig

    return BuilderConfig(device=options["device"], precision=options["precision"], workspace=options["workspace"],
                         max_batch=options.get("max_batch"), timing_iterations=options["timing_iterations"],
                         builder_optimization_level=options["opt_level"],
                         calibrator=calibrator if options["precision"] in QUANTIZED else None)


def build_engine(net, config, progress=None, cancel=None):
    """Build an Engine; progress(stage, fraction), cancel() -> bool as in workbench.build."""
    from ..builder.build import build

    return build(net, config, progress=progress, cancel=cancel)


def make_calibrator(kind: str, data, cache: Path | None):
    """A quantization calibrator of `kind` ('entropy', 'minmax', 'percentile') over `data`."""
    if not _quant_available():
        raise WorkbenchError("INT8 calibration needs workbench.quant, which this installation lacks")
    from ..quant.options import make_calibrator as make

    return make(kind, data, cache, progress=False)


def calibrate(calibrator, net, progress=None, cancel=None) -> dict:
    """Run the calibrator on the network as the builder will see it (optimized); {tensor: scale}."""
    from ..passes.pipeline import optimize

    optimized, _ = optimize(net.copy().validate())
    return calibrator.calibrate(optimized, progress=progress, cancel=cancel)


def export_qdq(net, scales: dict, path) -> None:
    """Write the network with explicit QuantizeLinear/DequantizeLinear pairs as an ONNX file."""
    from .. import quant

    quant.export_qdq(net, scales, path)


# ---------------------------------------------------------------------------------- measuring
def baseline_for(source, baseline=None):
    """The framework baseline runner: the user's (a runner, torch module or model), else onnxruntime on
    the ONNX source; None when there is nothing to compare with."""
    from ..tools.runners import as_runner

    if baseline is not None:
        return as_runner(baseline, role="baseline")
    if source is None or (isinstance(source, str) and not Path(source).is_file()):
        return None
    from ..baselines import default_baseline

    return default_baseline(source)


def bench(runner, batch: int, seconds: float, inputs: dict | None = None):
    """A short benchmark (BenchResult) at `batch`: long enough for percentiles, short enough to click."""
    import warnings

    from ..tools.bench import BenchWarning, bench as run_bench

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BenchWarning)  # instability is shown in the table's cv column
        return run_bench(runner, batch=batch, warmup_ms=min(200.0, 200 * seconds), duration_s=seconds,
                         iterations=10, inputs=inputs)


def compare(engine, baseline, batch: int, eval_data=None):
    """CompareResult of the engine against the baseline, on labelled data when given, else random inputs."""
    from ..tools.compare import compare as run_compare

    if eval_data is None:
        return run_compare(engine, baseline, batch=batch, atol=1e-3, rtol=1e-2, seed=0)
    x, y = eval_data
    return run_compare(engine, baseline, dataset=(x[:EVAL_SAMPLES], y[:EVAL_SAMPLES]), batch=batch,
                       atol=1e-3, rtol=1e-2)


def inspect_layers(engine, iterations: int = 5):
    """Per-layer DataFrame of the engine, with measured time per layer (TREx-style)."""
    return engine.inspect().profile(iterations=iterations).to_dataframe()


def bench_row(result) -> dict:
    """The results-table columns of a BenchResult."""
    lat, mem = result.latency, result.memory
    return {"runner": result.runner, "device": result.device, "batch": result.batch,
            "throughput": result.throughput, "latency_mean_ms": lat["mean"], "latency_p50_ms": lat["median"],
            "latency_p90_ms": lat["p90"], "latency_p99_ms": lat["p99"], "cv": result.cv,
            "weights_bytes": mem.get("weights_bytes"), "activations_bytes": mem.get("activations_bytes"),
            "workspace_bytes": mem.get("workspace_bytes"),
            "peak_bytes": mem.get("peak_bytes") or mem.get("measured_peak_bytes"),
            "inferences_per_joule": result.inferences_per_joule}


def latencies(result) -> np.ndarray:
    """Every timed inference's latency in ms."""
    return np.asarray(result.latencies_ms, dtype=float)


def compare_row(result) -> dict:
    """The results-table columns of a CompareResult: the worst output's errors, top-1 agreement, accuracy."""
    stats = [s for s in result.outputs.values() if "max_abs" in s]
    worst = lambda key, fn: fn(s[key] for s in stats) if stats else None  # noqa: E731
    tops = [s["top1"] for s in stats if "top1" in s]
    row = {"passed": result.passed, "max_abs": worst("max_abs", max), "mean_abs": worst("mean_abs", max),
           "cosine": worst("cosine", min), "snr_db": worst("snr_db", min),
           "top1_agreement": min(tops) if tops else None}
    if result.accuracy:
        row.update(accuracy=result.accuracy["runner"], baseline_accuracy=result.accuracy["baseline"])
    return row


def pareto_flags(values: np.ndarray) -> np.ndarray:
    """Mask of the rows (rows x objectives, all minimized) no other row dominates."""
    from ..tools.sweep import pareto_front

    return pareto_front(values)

