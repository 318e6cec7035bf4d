"""The GPU branches of bench (CUDA events, streams, transfers, allocator peak, NVML energy), exercised on
the CPU through stand-ins for cupy and pynvml: the real libraries are used the same way on a GPU."""
import sys
import time
import types

import numpy as np
import pytest

from workbench.runtime.engine import TensorSpec
from workbench.tools import energy
from workbench.tools.bench import bench
from workbench.tools.runners import Runner

pytestmark = pytest.mark.filterwarnings("ignore::workbench.tools.bench.BenchWarning")


class FakeArray:
    """A 'device' array: has __cuda_array_interface__ and get(), like cupy.ndarray."""

    __cuda_array_interface__ = {}

    def __init__(self, host):
        self.host = host

    def get(self):
        return self.host


def fake_cupy():
    class Event:
        def record(self):
            self.t = time.perf_counter()

    class Stream:
        def __init__(self, non_blocking=False):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Pool:
        def total_bytes(self):
            return 1234

    cuda = types.SimpleNamespace(Event=Event, Stream=Stream,
                                 Device=lambda: types.SimpleNamespace(synchronize=lambda: None),
                                 get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3)
    return types.SimpleNamespace(cuda=cuda, get_default_memory_pool=Pool, asarray=FakeArray)


def fake_pynvml():
    state = {"mj": 0}

    class NVMLError(Exception):
        pass

    def energy_counter(handle):
        state["mj"] += 500  # every read: half a joule later
        return state["mj"]

    return types.SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: "gpu0",
                                 nvmlDeviceGetTotalEnergyConsumption=energy_counter, NVMLError=NVMLError)


class FakeGpuRunner(Runner):
    name, device, gpu_lib = "fake-gpu", "cuda", "cupy"

    def input_specs(self):
        return [TensorSpec("x", "float32", ("batch", 4))]

    def output_names(self):
        return ["y"]

    def to_device(self, feeds):
        time.sleep(0.0002)
        return {k: FakeArray(v) for k, v in feeds.items()}

    def _infer_impl(self, feeds):
        time.sleep(0.0005)
        return {"y": FakeArray(feeds["x"].host + 1)}


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy())
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())


def test_gpu_bench_separates_transfers_compute_and_energy(gpu):
    r = bench(FakeGpuRunner(), batch=2, warmup_ms=0, duration_s=0.02, iterations=5, transfers=True, streams=2)
    assert r.h2d["min"] >= 0.2 and r.compute["min"] >= 0.5 and r.d2h is not None
    assert r.latency["mean"] >= r.compute["mean"] + r.h2d["mean"] * 0.9
    assert r.memory["measured_peak_bytes"] == 1234 and "cupy" in r.memory["measured_by"]
    assert r.energy["source"] == "nvml" and r.energy["joules"] == pytest.approx(0.5)
    assert r.inferences_per_joule == pytest.approx(r.queries * 2 / 0.5)
    assert "inferences/J" in r.summary() and "GPU Compute Time: min" in r.summary()


def test_without_transfers_inputs_stay_on_the_device(gpu):
    r = bench(FakeGpuRunner(), batch=2, warmup_ms=0, duration_s=0, iterations=3)
    assert r.h2d is None and r.d2h is None and r.compute is not None
    assert not r.cuda_graph and any("CUDA graph" in w for w in r.warnings)


def test_no_meter_without_nvml_or_rapl(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert energy.meter_for("cuda") is None
    monkeypatch.setattr(energy, "RAPL", tmp_path / "absent")
    assert energy.meter_for("cpu") is None


def test_rapl_counter_wraps(tmp_path):
    (tmp_path / "max_energy_range_uj").write_text("1000000\n")
    (tmp_path / "energy_uj").write_text("999000\n")
    meter = energy.RaplEnergy(tmp_path)
    meter.start()
    (tmp_path / "energy_uj").write_text("1000\n")
    assert meter.stop()["joules"] == pytest.approx(0.002)
    assert np.isfinite(meter.stop()["avg_watts"])
