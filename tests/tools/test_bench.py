import json
import time

import numpy as np
import pytest

from workbench.baselines import OnnxRuntime
from workbench.errors import ConfigError
from workbench.runtime.engine import TensorSpec
from workbench.tools.bench import BenchWarning, bench, stats_ms
from workbench.tools.runners import Runner

from .models import FAST, add_relu_model, engine_of

# The shared test machine is noisy: instability warnings are expected here, and tested on purpose below.
pytestmark = pytest.mark.filterwarnings("ignore::workbench.tools.bench.BenchWarning")


@pytest.fixture(scope="module")
def engine():
    # wide enough that one inference (~0.1 ms+) dwarfs the timing loop's own overhead
    return engine_of(add_relu_model(width=4096), max_batch=16)


@pytest.fixture(scope="module")
def result(engine):
    return bench(engine, batch=16, **FAST)


def test_percentiles_are_ordered(result):
    s = result.latency
    assert 0 < s["min"] <= s["median"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
    assert s["min"] <= s["mean"] <= s["max"]


def test_throughput_is_batch_over_latency_single_stream(result):
    assert result.batch == 16 and result.streams == 1
    expected = result.batch / (result.latency["mean"] / 1e3)
    assert result.throughput == pytest.approx(expected, rel=0.1)


def test_runs_at_least_duration_and_iterations(result):
    assert result.queries >= FAST["iterations"]
    assert result.wall_s >= FAST["duration_s"] * 0.95
    assert len(result.latencies_ms) == result.queries


def test_memory_comes_from_the_plan_and_tracemalloc(result):
    m = result.memory
    assert m["weights_bytes"] == 2 * 4096 * 4 and m["activations_bytes"] > 0
    assert m["measured_peak_bytes"] > 16 * 4096 * 4  # at least the output of one inference


def test_host_only_numbers_are_marked_not_measured(result):
    assert result.compute is None and result.h2d is None and result.d2h is None
    if result.energy is None:
        assert "Energy: not measured" in result.summary()
        assert result.inferences_per_joule is None


def test_result_forms(result):
    frame = result.to_dataframe()
    assert len(frame) == 1 and frame["throughput"][0] == result.throughput
    assert {"latency_p99_ms", "enqueue_mean_ms", "memory_peak_bytes", "cv"} <= set(frame.columns)
    data = json.loads(result.to_json())
    assert data["latency_ms"]["median"] == pytest.approx(result.latency["median"])
    assert "Throughput" in result.summary() and "percentile(99%)" in result.summary()
    assert len(result.latency_frame()) == result.queries


def test_streams_run_concurrently(engine):
    r = bench(engine, batch=4, streams=2, **FAST)
    assert set(np.unique(r.streams_of)) == {0, 1}
    assert r.queries >= FAST["iterations"]


def test_own_inputs_set_the_batch(engine):
    x = np.random.default_rng(0).standard_normal((3, 4096)).astype(np.float32)
    r = bench(engine, inputs={"x": x}, warmup_ms=0, duration_s=0, iterations=3)
    assert r.batch == 3 and r.queries == 3


def test_baselines_bench_too():
    r = bench(OnnxRuntime(add_relu_model()), batch=2, **FAST)
    assert r.runner == "onnxruntime-cpu" and r.throughput > 0 and r.memory["weights_bytes"] == 2 * 64 * 4


@pytest.mark.parametrize("bad", [{"duration_s": -1}, {"iterations": 0}, {"streams": 1.5}, {"warmup_ms": "x"}])
def test_bad_arguments(engine, bad):
    with pytest.raises(ConfigError):
        bench(engine, **{**FAST, **bad})


class Jittery(Runner):
    """Alternates fast and slow inferences: a benchmark of it must be flagged unstable."""

    name = "jittery"

    def __init__(self):
        self.calls = 0

    def input_specs(self):
        return [TensorSpec("x", "float32", ("batch", 2))]

    def output_names(self):
        return ["x"]

    def _infer_impl(self, feeds):
        self.calls += 1
        time.sleep(0.004 if self.calls % 2 else 0.0005)
        return feeds


def test_unstable_runs_warn():
    with pytest.warns(BenchWarning, match="varied"):
        r = bench(Jittery(), warmup_ms=0, duration_s=0, iterations=10)
    assert not r.stable and r.cv > 0.1 and r.warnings


def test_stats_ms():
    s = stats_ms([0.001, 0.002, None, 0.003])
    assert s["min"] == pytest.approx(1) and s["max"] == pytest.approx(3) and s["median"] == pytest.approx(2)
    assert stats_ms([None]) is None
