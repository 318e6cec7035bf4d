"""The workbench session: a model, build options, and every build so far, with actions (no widgets).

A `traitlets.HasTraits` model: the dashboard links its widgets to these traits and its buttons to
these actions, and tests drive it the same way in code. Long actions (build, calibrate) run in a
background thread, report `progress`/`stage`, and can be cancelled; they return a `Job`. An action
that fails leaves a readable `error` and keeps every earlier result.

    >>> s = Session(wb.zoo.digits().model, eval_data=(d.x_test, d.y_test))
    >>> s.build(precision="fp16", batch=8).result()        # one new row in s.results
    >>> s.export("digits.plan")                            # plan + build report (+ calibration cache)
"""
from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import traitlets as t

from ..errors import CancelledError, ConfigError, WorkbenchError
from . import adapters

# The results table's columns, in display order (a build fills those it measured).
COLUMNS = ["build", "label", "kind", "runner", "device", "precision", "batch", "workspace", "opt_level",
           "calibrator", "build_s", "throughput", "latency_mean_ms", "latency_p50_ms", "latency_p90_ms",
           "latency_p99_ms", "cv", "weights_bytes", "activations_bytes", "workspace_bytes", "peak_bytes",
           "inferences_per_joule", "passed", "max_abs", "mean_abs", "cosine", "snr_db", "top1_agreement",
           "accuracy", "baseline_accuracy", "pareto"]
BUILD_SHARE = 0.6   # of the progress bar: the build itself; benchmark, comparison and profiling share the rest


def _frame(rows: list, columns: list):
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)


class Job:
    """A background action: `wait()`, `cancel()`, or `result()` (its value, re-raising its error)."""

    def __init__(self, name: str):
        self.name = name
        self._cancel, self._done = threading.Event(), threading.Event()
        self._value = self._error = None

    @classmethod
    def finished(cls, name: str, error: BaseException) -> "Job":
        """A job that failed before it started (e.g. the session was busy)."""
        job = cls(name)
        job._error = error
        job._done.set()
        return job

    def start(self, fn) -> "Job":
        """Run fn(job) in a daemon thread (the notebook's kernel stays free to handle clicks)."""
        threading.Thread(target=self._run, args=(fn,), name=f"workbench-{self.name}", daemon=True).start()
        return self

    def _run(self, fn) -> None:
        try:
            self._value = fn(self)
        except BaseException as e:  # noqa: BLE001 - kept for result(); the session has shown it already
            self._error = e
        finally:
            self._done.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self, where: str) -> None:
        """Raise CancelledError when cancel() was called (between steps of an action)."""
        if self.cancelled:
            raise CancelledError(f"{self.name} cancelled during {where}; earlier results are kept")

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None):
        """The action's return value; raises its error (also shown in the session's `error`)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.name} still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self) -> str:
        state = "running" if not self.done() else ("failed" if self._error else "done")
        return f"Job({self.name!r}, {state})"


class Session(t.HasTraits):
    """State and actions of the notebook workbench (see module docstring).

    model: ONNX path, bytes, ModelProto or Network. baseline: the framework baseline (runner, torch
    module or model; default onnxruntime on the model; False for none). calibration_data: what a
    quantization calibrator takes (arrays, batches, a folder of .npy/.npz). eval_data: (x, y) for
    accuracy. Options may be given as keyword arguments (precision="fp16", batch=8, ...).
    """

    # the model
    model_name = t.Unicode()
    summary = t.Dict()
    # build options
    devices = t.List(t.Unicode())
    device = t.Unicode("cpu")
    precisions = t.List(t.Unicode())
    precision = t.Unicode("fp32")
    batch_min = t.Int(1)
    batch_max = t.Int(1)
    batch = t.Int(1)
    workspace = t.Int(1 << 30)
    calibrators = t.List(t.Unicode(), default_value=list(adapters.CALIBRATORS))
    calibrator = t.Unicode("entropy")
    calibration_folder = t.Unicode("")   # when set, calibrate from this folder instead of calibration_data
    opt_level = t.Int(3)
    timing_iterations = t.Int(8)
    bench_seconds = t.Float(1.0)
    # state
    busy = t.Bool(False)
    task = t.Unicode("")                 # the running action's name, "" when idle
    progress = t.Float(0.0)
    stage = t.Unicode("")
    message = t.Unicode("")
    error = t.Unicode("")
    calibrated = t.Unicode("")           # the calibrator kind of the current calibration, "" if none
    results = t.Instance("pandas.DataFrame")
    latencies = t.Instance("pandas.DataFrame")   # long form: build, label, latency_ms
    selected = t.Int(-1)                 # build id of the engine the per-layer view and export use
    layers = t.Instance("pandas.DataFrame")

    def __init__(self, model, baseline=None, calibration_data=None, eval_data=None, workdir=None, **options):
        super().__init__()
        self.network, self._source = adapters.load_network(model)
        self._baseline_arg, self._baseline = baseline, None
        self.calibration_data, self.eval_data = calibration_data, eval_data
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="workbench-"))
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._calibration = None         # (calibrator, cache bytes) of the last calibration
        self._builds: dict = {}          # build id -> {"engine", "layers", "calibration"}
        self._rows, self._latency_rows = [], []
        self.model_name = self.network.name
        self.summary = adapters.model_summary(self.network)
        self.batch_min, self.batch_max = adapters.batch_range(self.network)
        self.devices = adapters.available_devices()
        self.precisions = adapters.supported_precisions(self.device)
        self.batch = self.batch_min
        self.results = _frame([], COLUMNS)
        self.latencies = _frame([], ["build", "label", "latency_ms"])
        self.layers = _frame([], [])
        self.set(**options)

    # ------------------------------------------------------------------------------ options
    def set(self, **options) -> "Session":
        """Set several options at once, checking the names.  >>> s.set(precision="fp16", batch=8)"""
        unknown = sorted(set(options) - set(self.option_names()))
        if unknown:
            raise ConfigError(f"unknown session options {unknown}; options are {self.option_names()}")
        for name, value in options.items():
            setattr(self, name, value)
        return self

    @staticmethod
    def option_names() -> list:
        return ["device", "precision", "batch", "workspace", "calibrator", "calibration_folder", "opt_level",
                "timing_iterations", "bench_seconds"]

    def options(self) -> dict:
        """The current build options, as adapters.make_config takes them."""
        dynamic = self.batch_max > self.batch_min
        return {"device": self.device, "precision": self.precision, "batch": self.batch,
                "max_batch": self.batch if dynamic else None, "workspace": self.workspace,
                "opt_level": self.opt_level, "timing_iterations": self.timing_iterations}

    @t.validate("device")
    def _check_device(self, proposal):
        if self.devices and proposal.value not in self.devices:
            raise t.TraitError(f"device {proposal.value!r} is not available here; choose one of {self.devices}")
        return proposal.value

    @t.observe("device")
    def _device_changed(self, change):
        self.precisions = adapters.supported_precisions(change.new)
        if self.precision not in self.precisions:
            self.precision = "fp32"

    @t.validate("precision")
    def _check_precision(self, proposal):
        if self.precisions and proposal.value not in self.precisions:
            raise t.TraitError(f"precision {proposal.value!r} is not supported on {self.device}; "
                               f"choose one of {self.precisions}")
        return proposal.value

    @t.validate("batch")
    def _check_batch(self, proposal):
        if not self.batch_min <= proposal.value <= self.batch_max:
            raise t.TraitError(f"batch {proposal.value} is outside what the model allows "
                               f"({self.batch_min}..{self.batch_max})")
        return proposal.value

    @t.validate("workspace", "opt_level", "timing_iterations", "bench_seconds", "calibrator")
    def _check_range(self, proposal):
        name, value = proposal.trait.name, proposal.value
        ok = {"workspace": lambda v: v >= 0, "opt_level": lambda v: 0 <= v <= 5,
              "timing_iterations": lambda v: v >= 1, "bench_seconds": lambda v: v > 0,
              "calibrator": lambda v: v in self.calibrators}[name](value)
        if not ok:
            raise t.TraitError(f"{name}={value!r} is out of range")
        return value

    # ------------------------------------------------------------------------------ running actions
    def _start(self, name: str, fn) -> Job:
        """Start `fn(job)` in the background unless another action runs; show its outcome when done."""
        with self._lock:
            if self.busy:
                error = WorkbenchError(f"cannot {name} now: {self.task} is running; wait for it or press Cancel")
                self.error = str(error)
                return Job.finished(name, error)
            self.busy, self.task, self.progress, self.stage, self.error = True, name, 0.0, "starting", ""
            self._job = Job(name)
        return self._job.start(lambda job: self._guarded(name, fn, job))

    def _guarded(self, name: str, fn, job: Job):
        try:
            value = fn(job)
            self.progress = 1.0
            return value
        except CancelledError:
            self.message, self.progress = f"{name.capitalize()} cancelled; earlier results are kept.", 0.0
            raise
        except Exception as e:  # noqa: BLE001 - every failure becomes a readable message, never a dead button
            self._fail(name, e)
            self.progress = 0.0
            raise
        finally:
            self.busy, self.task, self.stage = False, "", ""

    def _fail(self, action: str, error: Exception) -> None:
        # Our errors and trait checks already say what is wrong and what to do; others get their type too.
        readable = isinstance(error, (WorkbenchError, t.TraitError))
        text = str(error) if readable else f"{type(error).__name__}: {error}"
        self.error = f"{action.capitalize()} failed: {text}"
        self.message = ""

    def _report(self, stage: str, fraction: float) -> None:
        self.stage, self.progress = stage, float(min(max(fraction, 0.0), 1.0))

    def cancel(self) -> None:
        """Ask the running action to stop at its next step (its partial work is dropped)."""
        if self._job is not None and not self._job.done():
            self._job.cancel()
            self.stage = "cancelling"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running action (if any) finishes."""
        return self._job.wait(timeout) if self._job is not None else True

    # ------------------------------------------------------------------------------ calibrate
    def calibrate(self, wait: bool = False) -> Job:
        """Measure activation ranges for INT8 with the chosen calibrator, in the background."""
        job = self._start("calibrate", self._calibrate)
        if wait:
            job.wait()
        return job

    def _calibration_source(self):
        if self.calibration_folder:
            folder = Path(self.calibration_folder).expanduser()
            if not folder.is_dir():
                raise ConfigError(f"calibration folder {folder} does not exist; give a folder of .npy/.npz batches")
            return str(folder)
        if self.calibration_data is None:
            raise ConfigError("no calibration data: pass Workbench(..., calibration_data=arrays or batches) "
                              "or type a folder of .npy/.npz batches in the calibration field")
        return self.calibration_data

    def _calibrate(self, job: Job) -> dict:
        kind = self.calibrator
        cache = self.workdir / f"{self.model_name}.{kind}.calib"
        cache.unlink(missing_ok=True)  # new data or settings: never reuse an older calibration
        calibrator = adapters.make_calibrator(kind, self._calibration_source(), cache)
        scales = adapters.calibrate(calibrator, self.network, progress=lambda f: self._report("calibrating", f),
                                    cancel=lambda: job.cancelled)
        job.check("calibration")
        self._calibration = (calibrator, cache.read_bytes() if cache.is_file() else None)
        self.calibrated = kind
        self.message = f"Calibrated {len(scales)} tensors with the {kind} calibrator; INT8 builds will use them."
        return scales

    # ------------------------------------------------------------------------------ build
    def build(self, wait: bool = False, **options) -> Job:
        """Build with the current options (or these), then benchmark, compare and profile it: one new
        row in `results`. Runs in the background; `wait=True` or `.result()` blocks."""
        if options:
            try:
                self.set(**options)
            except (t.TraitError, ConfigError) as e:
                self._fail("build", e)
                return Job.finished("build", e)
        job = self._start("build", self._build)
        if wait:
            job.wait()
        return job

    def _build(self, job: Job) -> dict:
        options = self.options()
        calibration = self._calibration_for(options, job)
        config = adapters.make_config(options, calibration[0] if calibration else None)
        t0 = time.perf_counter()
        engine = adapters.build_engine(self.network, config, cancel=lambda: job.cancelled,
                                       progress=lambda stage, f: self._report(f"building: {stage}", BUILD_SHARE * f))
        build_s = time.perf_counter() - t0
        job.check("the build")
        self._report("benchmarking", BUILD_SHARE)
        bench = adapters.bench(engine, options["batch"], self.bench_seconds)
        job.check("the benchmark")
        self._report("comparing with the baseline", BUILD_SHARE + 0.15)
        baseline = self._baseline_runner()
        compared = None if baseline is None else adapters.compare(engine, baseline, options["batch"], self.eval_data)
        job.check("the comparison")
        self._report("profiling layers", BUILD_SHARE + 0.25)
        layers = adapters.inspect_layers(engine)
        extra = self._baseline_row(baseline, options["batch"], compared, job)
        return self._commit(engine, options, build_s, bench, compared, layers, calibration, extra)

    def _calibration_for(self, options: dict, job: Job):
        """The calibration a quantized build uses: the last one, or one run now with the chosen calibrator."""
        if options["precision"] not in adapters.QUANTIZED:
            return None
        if self._calibration is None or self.calibrated != self.calibrator:
            self._calibrate(job)
        return self._calibration

    def _baseline_runner(self):
        if self._baseline is None and self._baseline_arg is not False:
            self._baseline = adapters.baseline_for(self._source, self._baseline_arg)
        return self._baseline

    def _baseline_row(self, baseline, batch: int, compared, job: Job):
        """A row for the framework baseline at this batch, once per batch (None when there is one already)."""
        if baseline is None or any(r["kind"] == "baseline" and r["batch"] == batch for r in self._rows):
            return None
        self._report("benchmarking the baseline", BUILD_SHARE + 0.3)
        bench = adapters.bench(baseline, batch, self.bench_seconds)
        job.check("the baseline benchmark")
        row = {"kind": "baseline", "label": f"{bench.runner} b{batch}", "precision": "fp32",
               **adapters.bench_row(bench), "passed": True, "max_abs": 0.0, "mean_abs": 0.0, "cosine": 1.0}
        if compared is not None and compared.accuracy:
            row["accuracy"] = row["baseline_accuracy"] = compared.accuracy["baseline"]
        return row, adapters.latencies(bench)

    def _commit(self, engine, options, build_s, bench, compared, layers, calibration, extra) -> dict:
        """Add the finished build (and a new baseline row) to the tables; nothing is touched before this."""
        build_id = len(self._rows) + (extra is not None)
        if extra is not None:
            self._add_row({**extra[0], "build": build_id - 1}, extra[1])
        number = len(self._builds) + 1  # engines count 1, 2, 3... (baseline rows have ids but no number)
        row = {"build": build_id, "kind": "engine", "label": f"#{number} {options['precision']} b{options['batch']}",
               "precision": options["precision"], "workspace": options["workspace"], "opt_level": options["opt_level"],
               "calibrator": self.calibrated if calibration else None, "build_s": build_s,
               **adapters.bench_row(bench), **(adapters.compare_row(compared) if compared is not None else {})}
        row["device"] = engine.backend
        self._builds[build_id] = {"engine": engine, "layers": layers, "calibration": calibration}
        self.selected = build_id  # before the table changes, so views of the table see the new selection
        self._add_row(row, adapters.latencies(bench))
        agreement = row.get("top1_agreement")
        self.message = (f"Built {row['label']}: {row['throughput']:.0f} inferences/s, "
                        f"p50 {row['latency_p50_ms']:.3f} ms"
                        + (f", top-1 agreement {100 * agreement:.1f} %" if agreement is not None else ""))
        return row

    def _add_row(self, row: dict, latencies: np.ndarray) -> None:
        self._rows.append(row)
        self._latency_rows += [{"build": row["build"], "label": row["label"], "latency_ms": v} for v in latencies]
        self.latencies = _frame(self._latency_rows, ["build", "label", "latency_ms"])
        self.results = _with_pareto(_frame(self._rows, COLUMNS))

    # ------------------------------------------------------------------------------ selection, export
    @property
    def builds(self) -> list:
        """Build ids of the engines built so far (baseline rows are not engines)."""
        return sorted(self._builds)

    def engine(self, build_id: int | None = None):
        """The Engine of a build (default: the selected one)."""
        build_id = self.selected if build_id is None else build_id
        if build_id not in self._builds:
            raise WorkbenchError(f"there is no engine with build id {build_id}; engines so far: "
                                 f"{self.builds or 'none'} (press Build first)")
        return self._builds[build_id]["engine"]

    @t.observe("selected")
    def _selected_changed(self, change):
        build = self._builds.get(change.new)
        self.layers = build["layers"] if build else _frame([], [])

    def select(self, build_id: int) -> None:
        """Show the per-layer view of a build and export it next."""
        try:
            self.engine(build_id)
        except WorkbenchError as e:
            self._fail("select", e)
            return
        self.selected = build_id

    def export(self, path=None, build_id: int | None = None) -> list:
        """Write the selected engine's plan file, its build report (JSON), the calibration cache when it was
        calibrated, and a Q/DQ ONNX model when it is quantized. Returns the paths written ([] on failure)."""
        try:
            files = self._export(path, self.selected if build_id is None else build_id)
        except (WorkbenchError, OSError) as e:
            self._fail("export", e)
            return []
        self.error = ""
        self.message = "Exported " + ", ".join(str(f) for f in files)
        return [str(f) for f in files]

    def _export(self, path, build_id: int) -> list:
        engine = self.engine(build_id)
        row = next(r for r in self._rows if r["build"] == build_id)
        plan = Path(path or f"{self.model_name}_{build_id}_{row['precision']}.plan").expanduser()
        if not plan.parent.is_dir():
            raise WorkbenchError(f"cannot export to {plan}: {plan.parent} is not an existing folder; create it or "
                                 f"pick another file name")
        stem = plan.with_name(plan.stem)
        engine.save(plan)
        report = Path(f"{stem}.build.json")
        report.write_text(json.dumps(_build_report(self, engine, row), indent=2, default=_json_default))
        files = [plan, report]
        calibration = self._builds[build_id]["calibration"]
        if calibration is not None and calibration[1] is not None:
            files.append(Path(f"{stem}.calib"))
            files[-1].write_bytes(calibration[1])
        if calibration is not None:
            files.append(Path(f"{stem}.qdq.onnx"))
            adapters.export_qdq(self.network, calibration[0].scales, files[-1])
        return files

    def __repr__(self) -> str:
        return (f"Session({self.model_name!r}, {len(self._builds)} builds, device={self.device}, "
                f"precision={self.precision}, batch={self.batch})")


def _with_pareto(frame):
    """The table with a `pareto` flag: rows no other row beats on latency, error and memory at once."""
    frame = frame.copy()
    error = frame["accuracy"].rsub(1) if frame["accuracy"].notna().all() else frame["max_abs"]
    objectives = np.column_stack([frame["latency_p50_ms"].astype(float), error.astype(float),
                                  frame["peak_bytes"].astype(float)])
    usable = [c for c in range(objectives.shape[1]) if np.isfinite(objectives[:, c]).all()]
    flags = adapters.pareto_flags(objectives[:, usable]) if usable and len(frame) else np.zeros(len(frame), bool)
    frame["pareto"] = flags.astype(bool)
    return frame


def _build_report(session: Session, engine, row: dict) -> dict:
    return {"model": session.model_name, "summary": session.summary, "measured": row, "config": engine.config,
            "device": engine.device, "report": engine.report,
            "precisions": dict(sorted(Counter(engine.precisions.values()).items()))}


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
