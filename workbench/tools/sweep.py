"""sweep: build, bench and compare every point of a grid of build options, on any executor.

    >>> result = wb.sweep("model.onnx", grid={"batch": [1, 8], "precision": ["fp32", "fp16"]})
    >>> result.to_dataframe()                      # one row per point, plus the baseline per batch
    >>> from dask.distributed import Client
    >>> wb.sweep("model.onnx", grid, executor=Client(cluster).get_executor())

The baseline runs here, once per batch size: its outputs on fixed inputs (or on `data`) travel to the
workers with the model (a path, else its bytes) and a plain dict of options, so every task pickles.
A point that fails (the builder rejects a value, a worker dies) becomes a row with status "error" and
the error in "message"; the sweep goes on.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import ConfigError, WorkbenchError
from .results import Result, pandas
from .runners import Runner, as_runner

# Objectives of the Pareto flag, all minimized; one unknown for some successful row is left out.
OBJECTIVES = ("latency_mean_ms", "error", "memory_bytes", "energy_j_per_inference")
DEFAULT_BENCH = {"warmup_ms": 50, "duration_s": 0.5, "iterations": 10}


def grid_keys() -> set:
    """Names a grid may vary: "batch" (max_batch and the benchmark batch) and every BuilderConfig option."""
    from ..builder.config import BuilderConfig

    return {"batch"} | {f.name for f in fields(BuilderConfig)} - {"calibrator", "profiles"}


def _values(grid: dict) -> dict:
    """{option: [values]}: a single value stands for a list of one."""
    return {k: list(v) if isinstance(v, (list, tuple, range)) else [v] for k, v in grid.items()}


def grid_points(grid: dict) -> list:
    """Every combination of the grid's values, as dicts, in the grid's order."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("sweep: grid must be a non-empty dict {option: [values]}, e.g. {'batch': [1, 8]}")
    unknown = sorted(set(grid) - grid_keys())
    if unknown:
        raise ConfigError(f"sweep: grid options {unknown} are unknown; use {sorted(grid_keys())}")
    values = _values(grid)
    empty = [k for k, v in values.items() if not v]
    if empty:
        raise ConfigError(f"sweep: grid options {empty} have no values")
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


@dataclass
class SweepTask:
    """All one worker needs for one point; plain data, so any executor can ship it."""

    model: object                 # path (str) or ONNX bytes
    point: dict
    config: dict                  # base BuilderConfig options
    bench: dict                   # bench() options
    tolerance: dict               # {"atol", "rtol"}
    reference: list | None = None  # [(feeds, baseline outputs, labels)] at this point's batch
    baseline: str = "baseline"


class Replay(Runner):
    """A runner that hands back recorded outputs, batch after batch (the baseline, computed once)."""

    def __init__(self, name: str, feeds: dict, outputs: list):
        self.name, self._outputs, self._next = name, outputs, 0
        from ..runtime.engine import TensorSpec

        self._specs = [TensorSpec(k, np.asarray(v).dtype.name, np.shape(v)) for k, v in feeds.items()]

    def input_specs(self) -> list:
        return self._specs

    def output_names(self) -> list:
        return list(self._outputs[0])

    def _infer_impl(self, feeds: dict) -> dict:
        out = self._outputs[self._next % len(self._outputs)]
        self._next += 1
        return out


def run_point(task: SweepTask) -> dict:
    """Build, bench and compare one point; any failure becomes the row's error instead of an exception."""
    from ..builder.build import build
    from ..builder.config import BuilderConfig
    from ..parsers.onnx import load_onnx

    point = dict(task.point)
    row = {**point, "runner": "workbench", "status": "ok", "message": None}
    try:
        batch = point.pop("batch", None)
        options = {**task.config, **point, **({"max_batch": batch} if batch is not None else {})}
        t0 = time.perf_counter()
        engine = build(load_onnx(task.model), BuilderConfig(**options))
        row["build_s"] = time.perf_counter() - t0
        row["runner"] = f"workbench-{engine.backend}"
        row.update(bench_columns(_bench(engine, batch, task.bench)))
        if task.reference:
            row.update(compare_columns(_compare(engine, task)))
    except Exception as e:  # noqa: BLE001 - a failed point is a row, never a lost sweep
        row.update(status="error", message=f"{type(e).__name__}: {e}")
    return row


def _bench(runner, batch, options: dict):
    from .bench import bench

    return bench(runner, batch=batch, **{**DEFAULT_BENCH, **options})


def _compare(engine, task: SweepTask):
    from .compare import compare

    feeds0 = task.reference[0][0]
    replay = Replay(task.baseline, feeds0, [outputs for _, outputs, _ in task.reference])
    dataset = [(feeds, labels) if labels is not None else feeds for feeds, _, labels in task.reference]
    return compare(engine, replay, dataset=dataset, **task.tolerance)


def bench_columns(result) -> dict:
    """The sweep's columns from a BenchResult."""
    mem = result.memory
    memory = next((mem[k] for k in ("peak_bytes", "measured_peak_bytes", "weights_bytes") if mem.get(k)), None)
    per_inference = 1 / result.inferences_per_joule if result.inferences_per_joule else None
    return {"batch_run": result.batch, "throughput": result.throughput, "qps": result.qps,
            "latency_mean_ms": result.latency["mean"], "latency_median_ms": result.latency["median"],
            "latency_p99_ms": result.latency["p99"], "cv": result.cv, "memory_bytes": memory,
            "energy_j_per_inference": per_inference, "inferences_per_joule": result.inferences_per_joule}


def compare_columns(result) -> dict:
    """The sweep's columns from a CompareResult: worst case over the outputs."""
    stats = [s for s in result.outputs.values() if "max_abs" in s]
    worst = lambda key, fn: fn(s[key] for s in stats) if stats else None  # noqa: E731
    cols = {"passed": result.passed, "max_abs": worst("max_abs", max), "mean_abs": worst("mean_abs", max),
            "cosine": worst("cosine", min), "snr_db": worst("snr_db", min)}
    tops = [s["top1"] for s in stats if "top1" in s]
    cols["top1_agreement"] = min(tops) if tops else None
    if result.accuracy:
        cols["accuracy"], cols["accuracy_delta"] = result.accuracy["runner"], result.accuracy["delta"]
    return cols


def pareto_front(values: np.ndarray) -> np.ndarray:
    """Mask of the rows of `values` (rows x objectives, all minimized) that no other row dominates."""
    keep = np.ones(len(values), dtype=bool)
    for i, v in enumerate(values):
        dominated = np.all(values <= v, axis=1) & np.any(values < v, axis=1)
        keep[i] = not dominated.any()
    return keep


@dataclass
class SweepResult(Result):
    """The sweep's tidy table: one row per point (and the baseline per batch), with a `pareto` flag."""

    frame: object
    grid: dict
    objectives: list = field(default_factory=list)

    def to_dataframe(self):
        return self.frame.copy()

    def to_dict(self) -> dict:
        return {"grid": self.grid, "objectives": self.objectives,
                "rows": self.frame.astype(object).where(self.frame.notna(), None).to_dict("records")}

    @property
    def errors(self):
        """The rows of points that failed."""
        return self.frame[self.frame["status"] == "error"]

    @property
    def pareto(self):
        return self.frame[self.frame["pareto"]]


def _add_pareto(frame) -> list:
    """Add the "error" objective (1 - accuracy with labels, else max abs error) and the "pareto" flag to
    `frame`; returns the objectives used (those known for every successful row)."""
    if "accuracy" in frame:
        frame["error"] = 1 - frame["accuracy"]
    elif "max_abs" in frame:
        frame["error"] = frame["max_abs"]
    ok = frame["status"] == "ok"
    used = [o for o in OBJECTIVES if o in frame and ok.any() and frame.loc[ok, o].notna().all()]
    frame["pareto"] = False
    if used:
        frame.loc[ok, "pareto"] = pareto_front(frame.loc[ok, used].to_numpy(dtype=np.float64))
    return used


def _model_source(model):
    """What travels to the workers: a path as is, else the serialized ONNX bytes."""
    if isinstance(model, (str, os.PathLike)):
        if not os.path.isfile(model):
            raise WorkbenchError(f"sweep: {model}: no such file; give the path of an .onnx model")
        return os.fspath(model)
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    raise WorkbenchError(f"sweep takes an ONNX model (path, bytes or onnx.ModelProto), not {type(model).__name__}")


def _references(baseline, batch, data, seed: int) -> list:
    """[(feeds, baseline outputs, labels)] at one batch size, on `data` or on fixed random inputs."""
    from .inputs import iter_dataset, make_inputs

    if data is not None:
        names = [s.name for s in baseline.input_specs()]
        batches = list(iter_dataset(data, names, batch or 32))
    else:
        batches = [(make_inputs(baseline, batch, seed), None)]
    return [(feeds, baseline.infer(feeds), labels) for feeds, labels in batches]


def _baseline_row(baseline, batch, refs: list, bench_options: dict) -> dict:
    from .metrics import accuracy

    row = {"batch": batch, "runner": baseline.name, "status": "ok", "message": None}
    try:
        row.update(bench_columns(_bench(baseline, batch, {**bench_options, "inputs": refs[0][0]})))
        row.update(passed=True, max_abs=0.0, mean_abs=0.0, cosine=1.0, snr_db=float("inf"))
        labeled = [(out, y) for _, out, y in refs if y is not None]
        if labeled:
            first = next(iter(labeled[0][0]))
            row["accuracy"] = accuracy(np.concatenate([o[first] for o, _ in labeled]),
                                       np.concatenate([y for _, y in labeled]))
            row["accuracy_delta"] = 0.0
    except Exception as e:  # noqa: BLE001
        row.update(status="error", message=f"{type(e).__name__}: {e}")
    return row


def _collect(futures: list, tasks: list) -> list:
    rows = []
    for future, task in zip(futures, tasks):
        try:
            rows.append(future.result())
        except Exception as e:  # noqa: BLE001 - the worker itself failed (died, could not unpickle)
            rows.append({**task.point, "runner": "workbench", "status": "error",
                         "message": f"{type(e).__name__}: {e}"})
    return rows


def sweep(model, grid: dict, baseline=None, executor=None, data=None, *, config: dict | None = None,
          bench_options: dict | None = None, atol: float = 1e-4, rtol: float = 1e-3, seed: int = 0) -> SweepResult:
    """Build, bench and compare every combination of `grid`; returns a SweepResult.

    grid: {"batch": [...], "precision": [...], "workspace": [...], <any BuilderConfig option>: [...]}.
    baseline: a runner or model for the framework (default: onnxruntime on `model`); False skips comparing.
    executor: any concurrent.futures.Executor (e.g. dask's Client.get_executor()); None runs here, in order.
    data: (x, y) or batches for accuracy; config: base BuilderConfig options; bench_options: bench() options.

    >>> wb.sweep("model.onnx", {"batch": [1, 8], "precision": ["fp32", "fp16"]}).to_dataframe()
    """
    source = _model_source(model)
    points = grid_points(grid)
    bench_options = dict(bench_options or {})
    if baseline is False:
        base = None
    else:
        base = as_runner(baseline if baseline is not None else model, role="baseline")
    refs, rows = {}, []
    for batch in dict.fromkeys(p.get("batch") for p in points):
        if base is not None:
            refs[batch] = _references(base, batch, data, seed)
            rows.append(_baseline_row(base, batch, refs[batch], bench_options))
    tolerance = {"atol": atol, "rtol": rtol}
    tasks = [SweepTask(source, p, dict(config or {}), bench_options, tolerance, refs.get(p.get("batch")),
                       base.name if base is not None else "baseline") for p in points]
    if executor is None:
        rows += [run_point(t) for t in tasks]
    else:
        rows += _collect([executor.submit(run_point, t) for t in tasks], tasks)
    frame = pandas().DataFrame(rows)
    objectives = _add_pareto(frame)
    return SweepResult(frame, _values(grid), objectives)
