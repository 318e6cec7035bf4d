"""int8 between int8 layers (quant/chain.py): which tensors chain, bit-identical values, builds and plans."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.quant.chain import chain_int8, int8_grids
from workbench.quant.quantize import quantize_network

from .helpers import minmax_scales, needs_kernels, run

pytestmark = needs_kernels("Conv", "Gemm", "MatMul", "Relu")
F32 = np.float32
RNG = np.random.default_rng(7)


def _int8(net) -> list:
    return list(int8_grids(net))


def fused_conv(net, x, c_in, c_out, name, stride=1, groups=1, activation="Relu", residual=None):
    """A 3x3 FusedConv (pad 1) with He-scaled weights and a bias, optionally adding a residual."""
    rng = np.random.default_rng(len(net.layers))
    w = net.add_constant((rng.standard_normal((c_out, c_in // groups, 3, 3)) * (2 / (9 * c_in / groups)) ** 0.5)
                         .astype(F32), f"{name}_w")
    b = net.add_constant((rng.standard_normal(c_out) * 0.1).astype(F32), f"{name}_b")
    attrs = dict(strides=[stride] * 2, pads=[1] * 4, group=groups, kernel_shape=[3, 3], dilations=[1, 1],
                 activation=activation)
    inputs = [x, w, b] + ([residual] if residual else [])
    return net.add_layer("FusedConv", inputs, attrs, name, domain="workbench").outputs[0]


def conv_chain():
    """x -> c1 (Relu) -> c2 (stride 2, 2 groups, Relu) -> c3 (no activation) -> y."""
    net = wb.Network("conv_chain")
    x = net.add_input("x", "float32", ("batch", 4, 10, 10))
    h = fused_conv(net, x, 4, 8, "c1")
    h = fused_conv(net, h, 8, 8, "c2", stride=2, groups=2)
    net.mark_output(fused_conv(net, h, 8, 6, "c3", activation=None))
    return net


def residual_block():
    """x -> c1 = t -> c2 -> c3 + t (Relu) -> y: t is read as X by c2 and as the residual by c3."""
    net = wb.Network("residual_block")
    x = net.add_input("x", "float32", ("batch", 4, 8, 8))
    t = fused_conv(net, x, 4, 8, "c1")
    h = fused_conv(net, t, 8, 8, "c2")
    net.mark_output(fused_conv(net, h, 8, 8, "c3", residual=t))
    return net


def fork():
    """x -> c1 = t; t -> c2 -> y2 and t -> c3 -> y3: two X readers of t."""
    net = wb.Network("fork")
    x = net.add_input("x", "float32", ("batch", 4, 8, 8))
    t = fused_conv(net, x, 4, 8, "c1")
    net.mark_output(fused_conv(net, t, 8, 6, "c2"))
    net.mark_output(fused_conv(net, t, 8, 5, "c3", activation=None))
    return net


def pooled_block():
    """x -> c1 -> MaxPool -> t; t -> c2 -> c3 + t -> y: the pool passes c1's grid on to t's readers."""
    net = wb.Network("pooled_block")
    x = net.add_input("x", "float32", ("batch", 4, 10, 10))
    h = fused_conv(net, x, 4, 8, "c1")
    t = net.add_layer("MaxPool", [h], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], _indices=0),
                      "pool").outputs[0]
    h = fused_conv(net, t, 8, 8, "c2")
    net.mark_output(fused_conv(net, h, 8, 8, "c3", residual=t))
    return net


def gemm_chain():
    """x (batch, 32) -> Gemm -> Gemm -> MatMul -> y: three QGemm reading each other."""
    net = wb.Network("gemm_chain")
    h = net.add_input("x", "float32", ("batch", 32))
    for i, (k, n) in enumerate([(32, 24), (24, 16)]):
        h = net.add_fully_connected(h, (RNG.standard_normal((n, k)) / k ** 0.5).astype(F32),
                                    (RNG.standard_normal(n) * 0.1).astype(F32), name=f"fc{i}").outputs[0]
    net.mark_output(net.add_matmul(h, (RNG.standard_normal((16, 10)) * 0.25).astype(F32), name="head").outputs[0])
    return net


def inputs(net, batch=3, scale=1.0):
    shape = (batch, *net.tensors[net.inputs[0]].shape[1:])
    return (RNG.standard_normal(shape) * scale).astype(F32)


def quantized(net, **kw):
    """net quantized to int8 with scales from one calibration batch."""
    return quantize_network(net, minmax_scales(net, inputs(net, 4)), **kw)


@pytest.mark.parametrize("make, between", [(conv_chain, ["c1_out", "c2_out"]), (gemm_chain, ["fc0_out", "fc1_out"])])
def test_x_chains_are_int8_and_bit_identical(make, between):
    q = quantized(make())
    chained = chain_int8(q)
    assert _int8(chained) == between and all(chained.tensors[n].dtype == "int8" for n in between)
    assert _int8(q) == [] and all(q.tensors[n].dtype == "float32" for n in between)  # pure: q untouched
    for name in between:
        producer = chained.producers()[name]
        reader = chained.consumers()[name][0]
        assert producer.attrs["y_scale"] == float(F32(reader.attrs["x_scale"])) and producer.attrs["y_quantized"] == 1
    x = inputs(q, scale=1.5)  # fresh data, partly beyond the calibrated range: saturation agrees too
    got, want = run(chained, {"x": x}), run(q, {"x": x})
    for name in q.outputs:
        np.testing.assert_array_equal(got[name], want[name])
    assert run(chained, {"x": x}, between)[between[0]].dtype == np.int8


def test_residual_chain_rounds_the_residual_to_the_grid():
    q = quantized(residual_block())
    chained = chain_int8(q)
    assert _int8(chained) == ["c1_out", "c2_out"]
    c1, c3 = chained.layer("c1"), chained.layer("c3")
    assert (c3.attrs["r_scale"], c3.attrs["r_zero_point"]) == (c1.attrs["y_scale"], c1.attrs["y_zero_point"])
    # the same network unchained but with t rounded to the grid (float32) computes the same bits
    rounded = q.copy()
    rounded.layer("c1").attrs.update(y_scale=c1.attrs["y_scale"], y_zero_point=0, y_dtype="int8")
    x = inputs(q, scale=0.5)  # inside the calibrated range: t saturates nowhere, so only rounding moves y
    got, want, unchained = run(chained, {"x": x}), run(rounded, {"x": x}), run(q, {"x": x})
    (name,) = q.outputs
    np.testing.assert_array_equal(got[name], want[name])
    assert 0 < np.abs(got[name] - unchained[name]).max() < 0.05 * np.abs(unchained[name]).max()


def projection_block():
    """x -> c1 -> c2 -> c3 + p (Relu) -> y with p = proj(x): p is read only as c3's residual."""
    net = wb.Network("projection_block")
    x = net.add_input("x", "float32", ("batch", 4, 8, 8))
    p = fused_conv(net, x, 4, 8, "proj", activation=None)
    h = fused_conv(net, fused_conv(net, x, 4, 8, "c1"), 8, 8, "c2")
    net.mark_output(fused_conv(net, h, 8, 8, "c3", residual=p))
    return net


def test_a_tensor_read_only_as_a_residual_takes_its_calibrated_grid():
    net = projection_block()
    scales = minmax_scales(net, inputs(net, 4))
    q = quantize_network(net, scales)
    assert "proj_out" not in _int8(chain_int8(q))  # no X reader and no scale: nothing to choose the grid
    chained = chain_int8(q, scales)
    assert _int8(chained) == ["proj_out", "c1_out", "c2_out"] and chained.tensors["proj_out"].dtype == "int8"
    proj, c3 = chained.layer("proj"), chained.layer("c3")
    assert proj.attrs["y_scale"] == float(F32(scales["proj_out"])) and proj.attrs["y_zero_point"] == 0
    assert (c3.attrs["r_scale"], c3.attrs["r_zero_point"]) == (proj.attrs["y_scale"], 0)
    x = inputs(q)
    got, unchained = run(chained, {"x": x}), run(q, {"x": x})
    (name,) = q.outputs
    assert 0 < np.abs(got[name] - unchained[name]).max() < 0.05 * np.abs(unchained[name]).max()


def test_a_max_pool_between_int8_layers_moves_int8():
    q = quantized(pooled_block())
    chained = chain_int8(q)
    assert _int8(chained) == ["c1_out", "pool_out", "c2_out"]
    assert chained.tensors["pool_out"].dtype == "int8" and chained.layer("c1").attrs["y_quantized"] == 1
    assert chained.layer("c1").attrs["y_scale"] == float(F32(chained.layer("c2").attrs["x_scale"]))
    assert chained.layer("c3").attrs["r_scale"] == chained.layer("c1").attrs["y_scale"]
    # the same network unchained with c1 rounded to the grid (float32) computes the same bits
    rounded = q.copy()
    rounded.layer("c1").attrs.update(y_scale=chained.layer("c1").attrs["y_scale"], y_zero_point=0, y_dtype="int8")
    x = inputs(q, scale=1.5)
    got, want = run(chained, {"x": x}), run(rounded, {"x": x})
    np.testing.assert_array_equal(got["c3_out"], want["c3_out"])
    assert run(chained, {"x": x}, ["pool_out"])["pool_out"].dtype == np.int8


def test_a_max_pool_read_by_a_float_layer_keeps_float():
    net = pooled_block()
    net.mark_output(net.add_activation("pool_out", "Sigmoid", name="side").outputs[0])
    chained = chain_int8(quantized(net))
    assert "c1_out" not in _int8(chained) and chained.tensors["pool_out"].dtype == "float32"


def _graph_output(net):
    net.mark_output("c1_out")
    return quantized(net)


def _float_reader(net):
    net.mark_output(net.add_activation("c1_out", "Sigmoid", name="side").outputs[0])
    return quantized(net)


def _other_scale(net):
    q = quantized(net)
    q.layer("c3").attrs["x_scale"] *= 1.5
    return q


def _fp8_reader(net):
    scales = minmax_scales(net, inputs(net, 4))
    return quantize_network(quantize_network(net, scales, exclude=["c3"]), scales, "fp8", layers=["c3"])


def _fp8_producer(net):
    scales = minmax_scales(net, inputs(net, 4))
    return quantize_network(quantize_network(net, scales, exclude=["c1"]), scales, "fp8", layers=["c1"])


def _other_output_grid(net):
    q = quantized(net)
    q.layer("c1").attrs.update(y_scale=q.layer("c2").attrs["x_scale"] * 2, y_zero_point=0, y_dtype="int8")
    return q


@pytest.mark.parametrize("mutate", [_graph_output, _float_reader, _other_scale, _fp8_reader, _fp8_producer,
                                    _other_output_grid])
def test_what_does_not_chain(mutate):
    assert _int8(chain_int8(quantized(fork()))) == ["c1_out"]
    q = mutate(fork())
    chained = chain_int8(q)
    assert _int8(chained) == [] and chained.tensors["c1_out"].dtype == "float32"
    x = inputs(q)
    got, want = run(chained, {"x": x}), run(q, {"x": x})
    assert all(np.array_equal(got[n], want[n]) for n in q.outputs)


def test_same_explicit_output_grid_chains_and_a_residual_alone_does_not():
    q = quantized(fork())
    c2 = q.layer("c2").attrs
    q.layer("c1").attrs.update(y_scale=c2["x_scale"], y_zero_point=c2["x_zero_point"], y_dtype=c2["x_dtype"])
    chained = chain_int8(q)
    assert _int8(chained) == ["c1_out"]
    x = inputs(q)
    got, want = run(chained, {"x": x}), run(q, {"x": x})
    assert all(np.array_equal(got[n], want[n]) for n in q.outputs)
    net = wb.Network("residual_only")
    x = net.add_input("x", "float32", ("batch", 4, 8, 8))
    t = fused_conv(net, x, 4, 8, "c1")
    net.mark_output(fused_conv(net, x, 4, 8, "c2", residual=t))
    assert _int8(chain_int8(quantized(net))) == []
    assert _int8(chain_int8(chained)) == ["c1_out"]  # idempotent


def test_int8_build_chains_plans_round_trip_and_tools_see_floats(tmp_path):
    net = residual_block()
    cal = wb.quant.MinMaxCalibrator([{"x": inputs(net, 4)} for _ in range(2)], progress=False)
    engine = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal, max_batch=4))
    assert engine.report["quantization"]["int8_tensors"] == 2
    assert {engine.precisions[n] for n in ("c1", "c2", "c3")} == {"int8"}
    t = "c1_out"
    assert engine.network.tensors[t].dtype == "int8" and engine.storage_dtypes[t] == "int8"
    assert engine.memory.offsets[t][1] == 4 * 8 * 8 * 8  # one byte an element at the max batch (4)
    x = inputs(net, 4)
    y = engine.create_execution_context().execute({"x": x})
    engine.save(tmp_path / "chain.plan")
    loaded = wb.load_plan(tmp_path / "chain.plan")
    assert loaded.network.layer("c1").attrs["y_quantized"] == 1 and loaded.network.tensors[t].dtype == "int8"
    for name, value in loaded.create_execution_context().execute({"x": x}).items():
        np.testing.assert_array_equal(value, y[name])
    rows = {r["name"]: r for r in engine.inspect().layers}
    assert rows["c1"]["out_dtypes"] == ["int8"] and rows["c2"]["in_dtypes"] == ["int8"]
    from workbench.tools.runners import EngineRunner

    _, trace = EngineRunner(engine).capture({"x": x})  # per-layer tools see the float32 grid values
    captured = next(outs[t] for layer, outs in trace if layer.name == "c1")
    steps = captured / F32(engine.network.layer("c1").attrs["y_scale"])
    assert captured.dtype == np.float32 and np.abs(steps).max() > 10 and np.allclose(steps, np.rint(steps))


def test_int8_build_pools_in_int8_and_tools_see_floats():
    net = pooled_block()
    cal = wb.quant.MinMaxCalibrator([{"x": inputs(net, 4)} for _ in range(2)], progress=False)
    engine = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal, max_batch=4))
    assert engine.storage_dtypes["pool_out"] == "int8" and engine.report["quantization"]["int8_tensors"] == 3
    from workbench.tools.runners import EngineRunner

    x = inputs(net, 4)
    y, trace = EngineRunner(engine).capture({"x": x})
    pooled = next(outs["pool_out"] for layer, outs in trace if layer.name == "pool")
    steps = pooled / F32(engine.network.layer("c1").attrs["y_scale"])
    assert pooled.dtype == np.float32 and np.abs(steps).max() > 10 and np.allclose(steps, np.rint(steps))
    reference = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=4)).create_execution_context().execute({"x": x})
    (name,) = net.outputs
    cos = np.dot(y[name].ravel(), reference[name].ravel()) / np.linalg.norm(y[name]) / np.linalg.norm(reference[name])
    assert cos > 0.99
