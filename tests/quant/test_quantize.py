"""The quantization pass: which layers it rewrites, how, and that the result stays close to fp32."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.quant.quantize import eligibility, quantize_network

from .helpers import convnet, minmax_scales, mlp, needs_kernels, run

RNG = np.random.default_rng(0)


@needs_kernels("Gemm", "MatMul", "Relu")
def test_mlp_layers_become_qgemm_with_int8_weights_and_int32_bias():
    net = mlp()
    x = RNG.standard_normal((16, 32)).astype(np.float32)
    q = quantize_network(net, minmax_scales(net, x))
    assert [(l.name, l.op) for l in q.layers] == [("fc", "QGemm"), ("relu", "Relu"), ("head", "QGemm")]
    fc = q.layer("fc")
    assert q.weights[fc.inputs[1]].dtype == np.int8 and q.weights[fc.inputs[1]].shape == (24, 32)
    assert q.weights[fc.inputs[2]].dtype == np.int32 and len(fc.attrs["w_scale"]) == 24
    assert q.weights[q.layer("head").inputs[1]].shape == (10, 24)  # MatMul's (K, N) stored as (N, K)
    assert "fc_w" not in q.weights and "fc_w" in net.weights        # pure: the input network is untouched
    assert net.layer("fc").op == "Gemm"
    want, got = run(net, {"x": x}), run(q, {"x": x})
    (name,) = net.outputs
    assert np.abs(got[name] - want[name]).max() < 0.02 * np.abs(want[name]).max()


@needs_kernels("Gemm", "MatMul", "Relu")
def test_layer_selection_and_fp8():
    net = mlp()
    x = RNG.standard_normal((4, 32)).astype(np.float32)
    scales = minmax_scales(net, x)
    assert [l.op for l in quantize_network(net, scales, layers=["head"]).layers] == ["Gemm", "Relu", "QGemm"]
    assert [l.op for l in quantize_network(net, scales, exclude=["head"]).layers] == ["QGemm", "Relu", "MatMul"]
    fp8 = quantize_network(net, scales, "fp8")
    fc = fp8.layer("fc")
    assert fc.attrs["x_dtype"] == "float8_e4m3fn" and len(fc.attrs["w_scale"]) == 1
    assert fc.attrs["x_scale"] == pytest.approx(scales["x"] * 127 / 448)
    assert fp8.weights[fc.inputs[2]].dtype == np.float32


@needs_kernels("Gemm", "MatMul", "Relu")
def test_gemm_alpha_beta_and_transposes_are_folded():
    net = mlp()
    fc = net.layer("fc")
    w = net.weights["fc_w"]
    net.weights["fc_w"] = np.ascontiguousarray(w.T)
    net.tensors["fc_w"].shape = w.T.shape
    fc.attrs = {"transB": 0, "alpha": 0.5, "beta": 2.0}
    x = RNG.standard_normal((8, 32)).astype(np.float32)
    q = quantize_network(net, minmax_scales(net, x))
    assert q.layer("fc").op == "QGemm"
    want, got = run(net, {"x": x}), run(q, {"x": x})
    (name,) = net.outputs
    assert np.abs(got[name] - want[name]).max() < 0.02 * np.abs(want[name]).max()


@needs_kernels("Gemm", "MatMul", "Relu")
def test_ineligible_layers_say_why():
    net = mlp()
    net.layer("fc").attrs["transA"] = 1
    reasons = eligibility(net, {"relu_out": 0.1})
    assert "transA=1" in reasons["fc"] and reasons["head"] is None
    assert "no calibrated scale" in eligibility(mlp(), {})["fc"]
    dynamic = mlp()
    dynamic.inputs.append("w_in")
    dynamic.tensors["w_in"] = dynamic.tensors["head_w"]
    dynamic.layer("head").inputs[1] = "w_in"
    assert "not a constant" in eligibility(dynamic, {"relu_out": 0.1})["head"]


@needs_kernels("Conv", "Relu")
def test_convolutions_keep_geometry_and_stay_close():
    net = convnet()
    x = RNG.standard_normal((2, 3, 12, 12)).astype(np.float32)
    q = quantize_network(net, minmax_scales(net, x))
    conv2 = q.layer("conv2")
    assert conv2.op == "QLinearConvFused" and conv2.attrs["group"] == 2 and conv2.attrs["strides"] == [2, 2]
    assert len(q.layer("conv1").inputs) == 3 and len(conv2.inputs) == 2  # conv2 has no bias
    want, got = run(net, {"x": x}), run(q, {"x": x})
    (name,) = net.outputs
    assert np.abs(got[name] - want[name]).max() < 0.03 * np.abs(want[name]).max()
