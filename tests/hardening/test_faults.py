"""Faults: an interrupted save leaves the previous file intact, a cancelled build leaves everything as it
was, and a failure during execute leaves the engine usable.

(Plan files are covered by tests/runtime/test_plan.py; here: every other file workbench writes.)
"""
from __future__ import annotations

import contextlib
import errno
import io
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest

import workbench as wb

from .graphs import one_node_model

f32 = np.float32


# ------------------------------------------------------------------------ atomic file writers
def _onnx_export(path, version: int) -> None:
    from workbench.parsers.onnx_export import save_onnx

    net = wb.Network(f"v{version}")
    x = net.add_input("x", "float32", (2,))
    net.mark_output(net.add_elementwise(x, np.full(2, version, f32), "Add").output)
    save_onnx(net, path)


def _calibration_cache(path, version: int) -> None:
    from workbench.quant.cache import write_cache

    write_cache(path, {f"t{i}": 0.5 * version for i in range(100)}, "0123456789abcdef", "MinMaxCalibrator")


def _cli_outputs(path, version: int) -> None:
    from workbench.cli import main

    model = one_node_model("Add", ["x", "w"], {"w": np.full(4, version, f32)}, {"x": np.ones(4, f32)})
    plan = path.parent / f"model{version}.plan"
    plan.write_bytes(wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu")).serialize())
    x_path = path.parent / "x.npy"
    np.save(x_path, np.ones(4, f32))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["run", str(plan), "--input", f"x={x_path}", "--output", str(path)])
    if stderr.getvalue().strip() == "error: interrupted":
        raise KeyboardInterrupt  # main() turned it into exit status 130; the test wants to see it
    if code:
        raise wb.WorkbenchError(stderr.getvalue())


def _zoo_model(path, version: int) -> None:
    from workbench.zoo._graph import GraphWriter

    g = GraphWriter(f"v{version}", opset=17)
    g.rename(g.node("Relu", ["x"]), "y")
    g.save(path, [("x", "float32", [version])], [("y", "float32", [version])])


def _timing_cache(path, version: int) -> None:
    cache = _timing_module().TimingCache(str(path), "device0")
    cache.put("site", {"tactic": f"t{version}", "ms": float(version)})
    cache.save()


def _timing_module():
    """workbench.backends.cuda.timing, importable without a GPU thanks to a stand-in cupy module."""
    try:
        importlib.import_module("cupy")
    except ImportError:
        sys.modules["cupy"] = types.ModuleType("cupy")  # removed again by the fixture below
    return importlib.import_module("workbench.backends.cuda.timing")


@pytest.fixture
def clean_cuda_modules():
    """Forget modules imported against a stand-in cupy, so no later test sees them."""
    before = set(sys.modules)
    yield
    if isinstance(sys.modules.get("cupy"), types.ModuleType) and not hasattr(sys.modules["cupy"], "cuda"):
        for name in set(sys.modules) - before:
            if name == "cupy" or name.startswith("workbench.backends.cuda"):
                del sys.modules[name]


WRITERS = {"ONNX export": (_onnx_export, "model.onnx"), "calibration cache": (_calibration_cache, "model.calib"),
           "cli run outputs": (_cli_outputs, "out.npz"), "zoo model": (_zoo_model, "zoo.onnx"),
           "timing cache": (_timing_cache, "timing.json")}


def _interrupt_rename(*args, **kwargs):
    raise KeyboardInterrupt  # the user hit Ctrl-C (or the kernel was interrupted) just before the rename


def _disk_full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failure", ["interrupted before rename", "disk full while writing"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_an_interrupted_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, clean_cuda_modules,
                                                             writer, failure):
    write, name = WRITERS[writer]
    if writer == "calibration cache":
        pytest.importorskip("workbench.quant.cache")
    path = tmp_path / name
    write(path, 1)
    before = path.read_bytes()
    if failure == "interrupted before rename":
        monkeypatch.setattr(os, "replace", _interrupt_rename)
        expected = (KeyboardInterrupt,)
    else:
        monkeypatch.setattr(os, "fsync", _disk_full)
        expected = (wb.WorkbenchError, OSError)
    with pytest.raises(expected) as e:
        write(path, 2)
    if isinstance(e.value, wb.WorkbenchError):
        assert "No space left" in str(e.value) and str(path.name) in str(e.value)
    monkeypatch.undo()
    assert path.read_bytes() == before, f"{writer}: the previous file was changed"
    leftovers = [f for f in os.listdir(tmp_path) if f.startswith(".")]
    assert not leftovers, f"{writer}: temporary files were left behind: {leftovers}"


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from workbench.fileio import atomic_write
    path, size = sys.argv[1], int(sys.argv[2])
    blocks = [bytes([v]) * size for v in (1, 2)]
    print("ready", flush=True)
    i = 0
    while True:
        atomic_write(path, blocks[i % 2])
        i += 1
""")


def test_a_save_killed_at_a_random_moment_leaves_a_whole_file(tmp_path):
    """SIGKILL a process saving 8 MiB files in a loop, several times: the file is always one whole version."""
    path = tmp_path / "state.bin"
    size = 8 << 20
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = np.random.default_rng(0)
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path), str(size)],
                                 stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.05, 0.4)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if path.exists():
            data = path.read_bytes()
            assert len(data) == size and data in (b"\1" * size, b"\2" * size), "a half-written file survived"


def test_the_timing_cache_reads_garbage_as_empty(tmp_path, clean_cuda_modules):
    timing = _timing_module()
    path = tmp_path / "timing.json"
    for garbage in (b"\xff\xfe", b"[1, 2]", b"{\"format\": 1, \"devices\": []}", b"{" * 100_000):
        path.write_bytes(garbage)
        cache = timing.TimingCache(str(path), "device0")
        assert cache.entries == {} and cache.note


# ----------------------------------------------------------------------------- cancelled builds
def _snapshot(net) -> str:
    """Everything a build could change in a network, as one comparable string (weights by content)."""
    return json.dumps({
        "inputs": net.inputs, "outputs": net.outputs,
        "layers": [[l.name, l.op, l.inputs, l.outputs, repr(sorted(l.attrs.items())), l.domain, l.fused]
                   for l in net.layers],
        "tensors": [[t.name, t.dtype, repr(t.shape)] for t in net.tensors.values()],
        "weights": {k: [str(np.asarray(w).dtype), np.asarray(w).tobytes().hex()] for k, w in net.weights.items()},
        "metadata": repr(net.metadata)}, sort_keys=True)


def _stages():
    from workbench.builder.build import STAGES

    return [*STAGES, "done"]


@pytest.fixture(scope="module")
def digits():
    from workbench.zoo import digits

    return digits()


@pytest.mark.parametrize("stage", _stages())
def test_a_cancelled_build_leaves_the_network_and_the_disk_as_they_were(tmp_path, monkeypatch, digits, stage):
    monkeypatch.chdir(tmp_path)
    net = wb.load_onnx(digits.model)
    before = _snapshot(net)
    seen = []
    cfg = wb.BuilderConfig(device="cpu", max_batch=4, timing_cache=str(tmp_path / "timing.json"))
    with pytest.raises(wb.CancelledError, match=stage):
        wb.build(net, cfg, progress=lambda name, fraction: seen.append(name), cancel=lambda: stage in seen or
                 _next_is(stage, seen))
    assert _snapshot(net) == before
    assert os.listdir(tmp_path) == []
    wb.build(net, cfg)  # and the same network still builds


def _next_is(stage: str, seen: list) -> bool:
    """True when `stage` is the next tick: cancel is asked before each stage's progress call."""
    stages = _stages()
    done = [s for s in stages if s in seen]
    return stages.index(stage) == len(done)


def test_a_calibration_cancelled_midway_writes_no_cache_and_changes_nothing(tmp_path, digits):
    quant = pytest.importorskip("workbench.quant")
    net = wb.load_onnx(digits.model)
    before = _snapshot(net)
    cache = tmp_path / "digits.calib"
    asked = []

    def cancel():  # asked once per batch: stop after a few batches have run
        asked.append(1)
        return len(asked) > 3

    calibrator = quant.EntropyCalibrator(digits.x_calib, cache=cache, batch_size=8, progress=False, cancel=cancel)
    cfg = wb.BuilderConfig(device="cpu", precision="int8", max_batch=8, calibrator=calibrator)
    with pytest.raises(wb.CancelledError):
        wb.build(net, cfg)
    assert len(asked) == 4, "cancel was not asked batch by batch"
    assert not cache.exists() and os.listdir(tmp_path) == []
    assert _snapshot(net) == before
    assert calibrator.scales is None  # nothing half-measured is kept for the next build
    asked.clear()
    calibrator.cancel = None
    wb.build(net, cfg)  # a later build calibrates from scratch and writes the cache
    assert cache.exists()


# ------------------------------------------------------------------------- failures in execute
def test_a_kernel_out_of_memory_is_an_error_that_leaves_the_engine_usable(monkeypatch):
    from workbench.backends.cpu import registry

    model = one_node_model("Relu", ["x"], {}, {"x": np.ones(4, f32)})
    engine = wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu"))
    context = engine.create_execution_context()
    registry.load_all()
    relu = registry.KERNELS[("", "Relu")]
    monkeypatch.setitem(registry.KERNELS, ("", "Relu"), lambda x, **a: (_ for _ in ()).throw(MemoryError()))
    broken = engine.create_execution_context()  # kernels are resolved when a context is made
    with pytest.raises(wb.ExecutionError, match="MemoryError"):
        broken.execute({"x": np.ones(4, f32)})
    monkeypatch.setitem(registry.KERNELS, ("", "Relu"), relu)
    x = np.array([-1, 2, -3, 4], f32)
    np.testing.assert_array_equal(context.execute({"x": x})["y"], np.maximum(x, 0))
    np.testing.assert_array_equal(engine.create_execution_context().execute({"x": x})["y"], np.maximum(x, 0))
