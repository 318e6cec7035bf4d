"""bench: a trtexec-like benchmark of any runner (an engine, a plan or a framework baseline).

    >>> result = wb.bench(engine, batch=8, duration_s=3)
    >>> print(result.summary()); result.to_dataframe()

Timing: after `warmup_ms` of untimed runs, each stream runs inferences back to back until both
`duration_s` has passed and `iterations` have run. Latency is host wall time per inference
(synchronized); on a GPU the compute time comes from CUDA events, and with transfers=True the
host-to-device and device-to-host copies are timed on their own.
"""
from __future__ import annotations

import threading
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from . import device, energy
from .inputs import batch_of, make_inputs
from .results import Result, pandas
from .runners import as_runner

UNSTABLE_CV = 0.10  # a coefficient of variation above this makes the numbers untrustworthy
PERCENTILES = (50, 90, 95, 99)


class BenchWarning(UserWarning):
    """The benchmark ran, but its numbers deserve suspicion (e.g. latency varied too much)."""


def stats_ms(seconds) -> dict | None:
    """min/mean/median/p90/p95/p99/max/std in milliseconds of a list of durations in seconds."""
    values = np.asarray([s for s in seconds if s is not None], dtype=np.float64) * 1e3
    if values.size == 0:
        return None
    p50, p90, p95, p99 = np.percentile(values, PERCENTILES)
    return {"min": values.min(), "mean": values.mean(), "median": p50, "p90": p90, "p95": p95, "p99": p99,
            "max": values.max(), "std": values.std()}


@dataclass
class BenchResult(Result):
    """What bench() measured. Times are in milliseconds; throughput in inferences (samples) per second."""

    runner: str
    device: str
    batch: int
    streams: int
    queries: int                 # inference calls timed, all streams together
    wall_s: float                # host wall time of the timed part
    latency: dict                # host latency stats (ms)
    enqueue: dict                # time for the run call to return (ms); equals latency on the host
    compute: dict | None         # device compute time (CUDA events) or None
    h2d: dict | None             # host-to-device copy time, when transfers=True on a GPU
    d2h: dict | None
    memory: dict
    energy: dict | None
    cuda_graph: bool = False
    transfers: bool = False
    warnings: list = field(default_factory=list)
    latencies_ms: np.ndarray = field(default=None, repr=False)
    streams_of: np.ndarray = field(default=None, repr=False)

    @property
    def qps(self) -> float:
        return self.queries / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def throughput(self) -> float:
        """Inferences (samples) per second: queries per second times the batch."""
        return self.qps * self.batch

    @property
    def cv(self) -> float:
        """Coefficient of variation of the latency (std / mean)."""
        return self.latency["std"] / self.latency["mean"] if self.latency["mean"] > 0 else 0.0

    @property
    def stable(self) -> bool:
        return self.cv <= UNSTABLE_CV

    @property
    def inferences_per_joule(self):
        if not self.energy or not self.energy.get("joules"):
            return None
        return self.queries * self.batch / self.energy["joules"]

    def to_dict(self) -> dict:
        return {"runner": self.runner, "device": self.device, "batch": self.batch, "streams": self.streams,
                "queries": self.queries, "wall_s": self.wall_s, "qps": self.qps, "throughput": self.throughput,
                "latency_ms": self.latency, "enqueue_ms": self.enqueue, "compute_ms": self.compute,
                "h2d_ms": self.h2d, "d2h_ms": self.d2h, "cv": self.cv, "stable": self.stable,
                "memory": self.memory, "energy": self.energy, "inferences_per_joule": self.inferences_per_joule,
                "cuda_graph": self.cuda_graph, "transfers": self.transfers, "warnings": self.warnings}

    def to_dataframe(self):
        """One tidy row: every number in its own column (concatenate rows of several runs to compare)."""
        row = {k: v for k, v in self.to_dict().items() if not isinstance(v, (dict, list)) and v is not None}
        for group in ("latency", "enqueue", "compute", "h2d", "d2h"):
            for stat, value in (getattr(self, group) or {}).items():
                row[f"{group}_{stat}_ms"] = value
        row.update({f"memory_{k}": v for k, v in self.memory.items()})
        row.update({f"energy_{k}": v for k, v in (self.energy or {}).items()})
        return pandas().DataFrame([row])

    def latency_frame(self):
        """One row per timed inference: stream and latency in ms (for histograms and time plots)."""
        return pandas().DataFrame({"stream": self.streams_of, "latency_ms": self.latencies_ms})

    def summary(self) -> str:
        """A trtexec-style text summary."""
        lines = [f"=== Performance summary: {self.runner} on {self.device}, batch {self.batch}, "
                 f"{self.streams} stream(s) ===",
                 f"Throughput: {self.throughput:.2f} inferences/s ({self.qps:.2f} qps)"]
        for label, group in (("Latency", self.latency), ("Enqueue Time", self.enqueue),
                             ("H2D Latency", self.h2d), ("GPU Compute Time", self.compute),
                             ("D2H Latency", self.d2h)):
            lines.append(f"{label}: " + (_fmt_stats(group) if group else "not measured"))
        lines.append(f"Total Host Walltime: {self.wall_s:.3f} s; total queries: {self.queries}")
        lines.append(f"Coefficient of variance: {100 * self.cv:.2f} %" + ("" if self.stable else "  (UNSTABLE)"))
        lines.append("Memory: " + (", ".join(f"{k[:-6]} {_fmt_bytes(v)}" for k, v in self.memory.items()
                                             if k.endswith("_bytes") and v is not None) or "not measured"))
        if self.energy:
            lines.append(f"Energy: {self.energy['joules']:.3f} J, {self.energy['avg_watts']:.1f} W average "
                         f"({self.energy['source']}); {self.inferences_per_joule:.1f} inferences/J")
        else:
            lines.append("Energy: not measured (needs NVML on an NVIDIA GPU, or readable RAPL counters)")
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    __str__ = summary


def _fmt_stats(s: dict) -> str:
    return (f"min = {s['min']:.4f} ms, max = {s['max']:.4f} ms, mean = {s['mean']:.4f} ms, median = "
            f"{s['median']:.4f} ms, percentile(90%) = {s['p90']:.4f} ms, percentile(95%) = {s['p95']:.4f} ms, "
            f"percentile(99%) = {s['p99']:.4f} ms")


def _fmt_bytes(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024


# ---------------------------------------------------------------------------------- measuring
@dataclass
class _Sample:
    latency: float
    enqueue: float
    compute_ms: float | None
    h2d: float | None
    d2h: float | None
    stream: int


def _one(runner, feeds, dev_feeds, transfers: bool, stream: int) -> _Sample:
    """One timed inference, synchronized at the end."""
    lib = runner.gpu_lib
    timer = device.EventTimer(lib)
    t0 = time.perf_counter()
    if transfers and lib:
        dev_feeds = runner.to_device(feeds)
        device.synchronize(lib)
    t1 = time.perf_counter()
    timer.start()
    outputs = runner._infer_impl(dev_feeds)
    t2 = time.perf_counter()
    timer.stop()
    device.synchronize(lib)
    t3 = time.perf_counter()
    if transfers and lib:
        runner.to_host(outputs)
    t4 = time.perf_counter()
    on_gpu = transfers and lib is not None
    return _Sample(t4 - t0, t2 - t1, timer.elapsed_ms(), t1 - t0 if on_gpu else None,
                   t4 - t3 if on_gpu else None, stream)


def _loop(runner, feeds, transfers, stream, until, at_least, start: threading.Barrier | None) -> list:
    """Inferences back to back on one stream until `until` (perf_counter) and at least `at_least` of them."""
    with device.stream_scope(runner.gpu_lib):
        try:
            dev_feeds = runner.to_device(feeds)
            device.synchronize(runner.gpu_lib)
        except BaseException:
            if start is not None:
                start.abort()  # release the other streams instead of leaving them waiting
            raise
        if start is not None:
            start.wait()
        deadline = time.perf_counter() + until
        samples = []
        while len(samples) < at_least or time.perf_counter() < deadline:
            samples.append(_one(runner, feeds, dev_feeds, transfers, stream))
        return samples


def _run_streams(runners, feeds, transfers, duration_s, iterations) -> tuple:
    """(samples, wall seconds) of all streams running at once, each in its own thread."""
    if len(runners) == 1:
        t0 = time.perf_counter()
        samples = _loop(runners[0], feeds, transfers, 0, duration_s, iterations, None)
        return samples, time.perf_counter() - t0
    barrier = threading.Barrier(len(runners) + 1)
    per_stream = -(-iterations // len(runners))
    with ThreadPoolExecutor(len(runners)) as pool:
        futures = [pool.submit(_loop, r, feeds, transfers, i, duration_s, per_stream, barrier)
                   for i, r in enumerate(runners)]
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # a stream failed to start: its future re-raises the error below
        t0 = time.perf_counter()
        samples = [s for f in futures for s in f.result()]
    return samples, time.perf_counter() - t0


def _warm(runners, feeds, warmup_ms: float) -> None:
    runners[0].infer(feeds)  # one checked run first: a framework's failure surfaces as a clear error
    for runner in runners:
        _loop(runner, feeds, False, 0, warmup_ms / 1e3 / len(runners), 1, None)


def _memory(runner, feeds, device_peak) -> dict:
    """The runner's known sizes, plus what one run allocates as seen by tracemalloc or the GPU library."""
    info = dict(runner.memory_info())
    if device_peak is not None:
        info["measured_peak_bytes"] = device_peak
        info["measured_by"] = f"{runner.gpu_lib} allocator"
    elif runner.traced_memory and not tracemalloc.is_tracing():
        tracemalloc.start()
        try:
            runner.infer(feeds)
            info["measured_peak_bytes"] = tracemalloc.get_traced_memory()[1]
            info["measured_by"] = "tracemalloc (NumPy allocations during one inference)"
        finally:
            tracemalloc.stop()
    return info


def _check_args(warmup_ms, duration_s, iterations, streams) -> None:
    for name, value in (("warmup_ms", warmup_ms), ("duration_s", duration_s)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"bench: {name} must be a number >= 0, got {value!r}")
    for name, value in (("iterations", iterations), ("streams", streams)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"bench: {name} must be an int >= 1, got {value!r}")


def bench(runner, batch: int | None = None, warmup_ms: float = 200, duration_s: float = 3, iterations: int = 10,
          streams: int = 1, cuda_graph: bool = True, transfers: bool = False, inputs: dict | None = None,
          seed: int | None = None) -> BenchResult:
    """Benchmark a runner, an Engine or a plan file; returns a BenchResult.

    batch: batch size of the random inputs (default: the engine's opt shape); inputs: your own feeds
    instead. streams: concurrent execution contexts. transfers: time host<->device copies (GPU).

    >>> wb.bench(engine, batch=8, duration_s=1).throughput
    """
    _check_args(warmup_ms, duration_s, iterations, streams)
    runner = as_runner(runner)
    feeds = runner.check_feeds(inputs) if inputs is not None else make_inputs(runner, batch, seed)
    batch = batch_of(feeds)
    graph = runner.set_cuda_graph(cuda_graph)
    runners = [runner] + [runner.fork() for _ in range(streams - 1)]
    _warm(runners, feeds, warmup_ms)
    meter = energy.meter_for(runner.device)
    device.reset_peak_memory(runner.gpu_lib)
    if meter is not None:
        meter.start()
    samples, wall = _run_streams(runners, feeds, transfers, duration_s, iterations)
    used = meter.stop() if meter is not None else None
    peak = device.peak_memory(runner.gpu_lib)
    def pick(attr):
        return [getattr(s, attr) for s in samples]

    compute = [None if c is None else c / 1e3 for c in pick("compute_ms")]
    result = BenchResult(runner.name, runner.device, batch, streams, len(samples), wall, stats_ms(pick("latency")),
                         stats_ms(pick("enqueue")), stats_ms(compute), stats_ms(pick("h2d")), stats_ms(pick("d2h")),
                         _memory(runner, feeds, peak), used, graph, transfers,
                         latencies_ms=np.asarray(pick("latency")) * 1e3, streams_of=np.asarray(pick("stream")))
    _warn(result, cuda_graph)
    return result


def _warn(result: BenchResult, cuda_graph: bool) -> None:
    if not result.stable:
        result.warnings.append(f"latency varied by {100 * result.cv:.1f} % (over {100 * UNSTABLE_CV:.0f} %): "
                               f"close other work, raise duration_s or warmup_ms, and rerun")
    if cuda_graph and not result.cuda_graph and result.device == "cuda":
        result.warnings.append("CUDA graph replay was asked for but this runner does not support it")
    for message in result.warnings:
        warnings.warn(message, BenchWarning, stacklevel=3)
