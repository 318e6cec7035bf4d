"""The CUDA engine end to end: build, CUDA-graph replay, device I/O, contexts, streams, plans, parity.

Whole-model parity (zoo models, GPU vs CPU engine) runs when the ops it needs are registered.
"""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from tests.gpu.helpers import TOLERANCE, rel_l2

pytestmark = pytest.mark.gpu


def _net(width=64, weight=True):
    """x + w -> Relu (w a weight, or a second input `w` when weight=False)."""
    from workbench.ir.network import Network

    net = Network("tiny")
    x = net.add_input("x", "float32", ("batch", width))
    if weight:
        w = net.add_constant(np.random.default_rng(0).standard_normal((1, width)).astype(np.float32), "w")
    else:
        w = net.add_input("w", "float32", (1, width))
    a = net.add_layer("Add", [x, w]).output
    r = net.add_layer("Relu", [a]).output
    net.mark_output(r)
    return net


def _build(net, tmp_path, **kw):
    kw.setdefault("timing_cache", str(tmp_path / "timing.json"))
    kw.setdefault("max_batch", 8)
    return wb.build(net, wb.BuilderConfig(device="cuda", **kw))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_numpy_in_numpy_out_and_graph_replay(tmp_path, precision):
    net = _net(weight=False)  # (fp16 weights next to fp32 inputs trip the builder's re-inference, not the GPU)
    profile = [{"x": ((1, 64), (8, 64), (8, 64)), "w": ((1, 64),) * 3}]
    engine = wb.build(net, wb.BuilderConfig(device="cuda", precision=precision, profiles=profile,
                                            timing_cache=str(tmp_path / "timing.json")))
    cpu = wb.build(net, wb.BuilderConfig(device="cpu", precision=precision, profiles=profile))
    ctx = engine.create_execution_context()
    runner = ctx._runner
    w = np.random.default_rng().standard_normal((1, 64)).astype(np.float32)
    for batch in (3, 3, 3, 8):
        x = np.random.default_rng().standard_normal((batch, 64)).astype(np.float32)
        got = ctx.execute({"x": x, "w": w})["relu_out"]
        want = cpu.create_execution_context().execute({"x": x, "w": w})["relu_out"]
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        assert rel_l2(got, want) <= TOLERANCE[precision]
    assert any(runner.graphs.values()), f"no CUDA graph was captured: {runner.notes}"


def test_cupy_in_cupy_out(tmp_path):
    import cupy as cp

    engine = _build(_net(), tmp_path)
    ctx = engine.create_execution_context()
    x = cp.asarray(np.random.default_rng().standard_normal((4, 64)).astype(np.float32))
    for _ in range(3):
        y = ctx.execute({"x": x})["relu_out"]
        assert isinstance(y, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(y), np.maximum(cp.asnumpy(x) + engine.network.weights["w"], 0),
                                   rtol=1e-6)


def test_contexts_on_streams_and_execute_async(tmp_path):
    import cupy as cp

    engine = _build(_net(), tmp_path)
    a, b = engine.create_execution_context(), engine.create_execution_context()
    assert a._runner.shared is b._runner.shared  # weights uploaded once
    xs = [cp.asarray(np.random.default_rng(i).standard_normal((8, 64)).astype(np.float32)) for i in range(2)]
    s1, s2 = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    for _ in range(3):
        y1 = a._runner.run_async({"x": xs[0]}, s1)["relu_out"]
        y2 = b._runner.run_async({"x": xs[1]}, s2)["relu_out"]
    s1.synchronize()
    s2.synchronize()
    w = engine.network.weights["w"]
    np.testing.assert_allclose(cp.asnumpy(y1), np.maximum(cp.asnumpy(xs[0]) + w, 0), rtol=1e-6)
    np.testing.assert_allclose(cp.asnumpy(y2), np.maximum(cp.asnumpy(xs[1]) + w, 0), rtol=1e-6)


def test_profile_memory_and_report(tmp_path):
    engine = _build(_net(), tmp_path)
    assert engine.report["timings"] and engine.device["name"]
    runner = engine.create_execution_context()._runner
    x = np.ones((8, 64), np.float32)
    rows = runner.profile({"x": x}, runs=3)
    assert [r["layer"] for r in rows] == [l.name for l in engine.network.layers] and all(r["ms"] > 0 for r in rows)
    mem = runner.memory()
    assert mem["weights_bytes"] >= 256 and mem["device_total_bytes"] > 0


def test_warm_timing_cache_and_plan_round_trip(tmp_path):
    first = _build(_net(), tmp_path)
    second = _build(_net(), tmp_path)
    assert second.tactics == first.tactics
    assert any(" 0 from the timing cache" not in n and "from the timing cache" in n for n in second.report["notes"])
    path = tmp_path / "tiny.plan"
    second.save(path)
    loaded = wb.load_plan(path)
    x = np.random.default_rng().standard_normal((5, 64)).astype(np.float32)
    np.testing.assert_array_equal(loaded.create_execution_context().execute({"x": x})["relu_out"],
                                  second.create_execution_context().execute({"x": x})["relu_out"])


# ------------------------------------------------------------------------------- zoo models, GPU vs CPU
def _zoo(name, tmp_path):
    from workbench.ir.ops import spec_for

    if spec_for("Conv") is None or spec_for("MatMul") is None:
        pytest.skip("the model ops are not registered in this checkout")
    zoo = pytest.importorskip("workbench.zoo")
    path = tmp_path / f"{name}.onnx"
    if name == "bert":
        zoo.bert(path, layers=2)
    else:
        getattr(zoo, name)(path)
    return wb.load_onnx(str(path))


def _feeds(net, batch, rng):
    feeds = {}
    for name in net.inputs:
        t = net.tensors[name]
        shape = [batch if not isinstance(d, int) and i == 0 else (d if isinstance(d, int) else 128)
                 for i, d in enumerate(t.shape)]
        if t.dtype.startswith("float"):
            feeds[name] = rng.standard_normal(shape).astype(t.dtype)
        elif "mask" in name:
            feeds[name] = np.ones(shape, t.dtype)
        else:
            feeds[name] = rng.integers(0, 1000, shape).astype(t.dtype)
    return feeds


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "bert"])
def test_zoo_model_parity_with_the_cpu(tmp_path, name, precision):
    net = _zoo(name, tmp_path)
    feeds = _feeds(net, 2, np.random.default_rng())
    profile = {n: (a.shape, a.shape, a.shape) for n, a in feeds.items()}
    gpu = wb.build(net, wb.BuilderConfig(device="cuda", precision=precision, profiles=[profile],
                                         timing_cache=str(tmp_path / "t.json"), builder_optimization_level=1))
    cpu = wb.build(net, wb.BuilderConfig(device="cpu", precision=precision, profiles=[profile]))
    got = gpu.create_execution_context().execute(feeds)
    want = cpu.create_execution_context().execute(feeds)
    for k in want:
        err = rel_l2(got[k], want[k])
        assert err <= (1e-4 if precision == "fp32" else 2e-2), f"{name} {precision} output {k}: {err:.2e}"


def test_graphs_around_a_step_that_cannot_be_captured(tmp_path):
    net = _net(weight=False)
    profile = [{"x": ((1, 64), (4, 64), (4, 64)), "w": ((1, 64),) * 3}]
    engine = wb.build(net, wb.BuilderConfig(device="cuda", profiles=profile, timing_cache=str(tmp_path / "t.json")))
    engine.tactics["add"] = "host"  # a host round trip between device steps
    ctx = engine.create_execution_context()
    w = np.random.default_rng().standard_normal((1, 64)).astype(np.float32)
    for _ in range(4):
        x = np.random.default_rng().standard_normal((4, 64)).astype(np.float32)
        np.testing.assert_allclose(ctx.execute({"x": x, "w": w})["relu_out"], np.maximum(x + w, 0), rtol=1e-6)
    captured = [e for e in ctx._runner.graphs.values() if e]
    assert captured and captured[0].graphs == 1 and any(p[0] == "eager" for p in captured[0].parts)
