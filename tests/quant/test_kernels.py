"""Quantized kernels: bit-exact against a NumPy int64 reference; float8 against its own recipe."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from workbench.errors import ShapeError
from workbench.ir.ops import Info, attributes, spec_for
from workbench.quant.numerics import quantize_bias, quantize_weights

from ..oracle import ours
from .helpers import needs_kernels

RNG = np.random.default_rng(0)
F32 = np.float32


def ref_quantize(x, scale, zp, dtype):
    info = np.iinfo(dtype)
    return np.clip(np.rint(x.astype(np.float64) / np.float64(F32(scale))) + zp, info.min, info.max).astype(np.int64)


def ref_dequant(acc, x_scale, w_scale, axis, ndim):
    unit = F32(x_scale) * np.asarray(w_scale, F32)
    shape = [1] * ndim
    shape[axis] = -1
    return acc.astype(F32) * unit.reshape(shape)


def gemm_case(m, k, n, x_dtype="int8", x_zp=0, w_zp=None, bias=True, scale_x=5.0):
    x = (RNG.standard_normal((m, k)) * scale_x).astype(F32)
    wq, w_scale = quantize_weights(RNG.standard_normal((n, k)).astype(F32), 0, "int8")
    x_scale = float(F32(np.abs(x).max() / 127))
    b = quantize_bias(RNG.standard_normal(n).astype(F32), x_scale, w_scale) if bias else None
    attrs = dict(x_scale=x_scale, x_zero_point=x_zp, x_dtype=x_dtype, w_scale=[float(s) for s in w_scale],
                 w_zero_point=w_zp)
    return x, wq, b, attrs


@pytest.mark.parametrize("m, k, n, x_dtype, x_zp, w_zp", [
    (7, 33, 5, "int8", 0, None),
    (4, 4096, 3, "int8", 0, None),          # |acc| beyond 2**24: float32 accumulation would not be exact
    (6, 50, 4, "uint8", 128, None),         # asymmetric activations, as onnxruntime writes them
    (5, 20, 3, "int8", -3, [1, -2, 0]),     # per-channel weight zero points
])
def test_qgemm_is_bit_exact(m, k, n, x_dtype, x_zp, w_zp):
    x, wq, b, attrs = gemm_case(m, k, n, x_dtype, x_zp, w_zp)
    if k == 4096:
        sign = np.where(RNG.standard_normal(k) > 0, 1, -1)
        x = (1e3 * sign * np.ones((m, 1))).astype(F32)      # saturates to +-127 (scale from amax)
        wq[0] = 127 * sign                                  # row 0 sums 4096 products of 127*127
    (got,) = ours("QGemm", [x, wq, b], attrs, domain="workbench")
    xq = ref_quantize(x, attrs["x_scale"], x_zp, x_dtype) - x_zp
    wi = wq.astype(np.int64) - (np.asarray(w_zp, np.int64)[:, None] if w_zp else 0)
    acc = xq @ wi.T + b.astype(np.int64)
    assert np.abs(acc).max() > 2**24 or k != 4096
    np.testing.assert_array_equal(got, ref_dequant(acc, attrs["x_scale"], attrs["w_scale"], 1, 2))


def test_qgemm_batched_input_and_output_rounding():
    x, wq, b, attrs = gemm_case(12, 16, 4)
    x3 = x.reshape(3, 4, 16)
    (flat,) = ours("QGemm", [x, wq, b], attrs, domain="workbench")
    (batched,) = ours("QGemm", [x3, wq, b], attrs, domain="workbench")
    np.testing.assert_array_equal(batched.reshape(12, 4), flat)
    y_scale = float(np.abs(flat).max() / 127)
    (rounded,) = ours("QGemm", [x, wq, b], {**attrs, "y_scale": y_scale}, domain="workbench")
    steps = rounded / F32(y_scale)
    np.testing.assert_allclose(steps, np.rint(steps), atol=1e-3)
    assert np.abs(rounded - flat).max() <= y_scale / 2 * 1.001


def test_qgemm_fp8_follows_its_recipe():
    x = RNG.standard_normal((8, 64)).astype(F32)
    w = RNG.standard_normal((5, 64)).astype(F32)
    wq, w_scale = quantize_weights(w, None, "fp8")
    x_scale = float(F32(np.abs(x).max() / 448))
    bias = RNG.standard_normal(5).astype(F32)
    attrs = dict(x_scale=x_scale, x_dtype="float8_e4m3fn", w_scale=[float(w_scale[0])])
    (got,) = ours("QGemm", [x, wq, bias], attrs, domain="workbench")
    xq = np.clip(x / F32(x_scale), -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    want = (xq @ wq.astype(np.float64).T) * (F32(x_scale) * w_scale[0]) + bias
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert wq.dtype == ml_dtypes.float8_e4m3fn and np.abs(wq.astype(F32)).max() == 448


def ref_conv(xq, wq, stride, pad, groups):
    """Direct int64 convolution (N, C, H, W) x (M, C/g, kh, kw), zero padding of the centred input."""
    xp = np.pad(xq, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    n, c, h, w = xp.shape
    m, cg, kh, kw = wq.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, m, oh, ow), np.result_type(xq, wq))
    mg = m // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
                out[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, wq[g * mg:(g + 1) * mg, :, i, j])
    return out


@needs_kernels("Conv")
@pytest.mark.parametrize("channels, stride, pad, groups, x_dtype, x_zp", [
    (8, 1, 1, 1, "int8", 0), (8, 2, 0, 2, "int8", 0), (8, 1, 2, 1, "uint8", 100), (8, 2, 1, 4, "int8", 5),
    (512, 1, 1, 1, "int8", 0),    # 512 x 3 x 3 saturated products pass 2**24: summed in float32 chunks
    (512, 1, 1, 2, "uint8", 0),   # grouped and too long for one float32 sum: float64
])
def test_qlinear_conv_is_bit_exact(channels, stride, pad, groups, x_dtype, x_zp):
    x = (RNG.standard_normal((2, channels, 5, 5)) * 3).astype(F32)
    wq, w_scale = quantize_weights(RNG.standard_normal((12, channels // groups, 3, 3)).astype(F32), 0, "int8")
    x_scale = float(F32(6 / 127))
    if channels > 8:  # saturated inputs, and output channel 0 aligned with their signs: |acc| ~ 2**26
        sign = np.where(RNG.standard_normal(channels) > 0, 1, -1) if x_dtype == "int8" else np.ones(channels)
        x = (x + 10 * sign[None, :, None, None]).astype(F32)
        wq[0] = (127 * sign[:channels // groups, None, None]).astype(np.int8)
    bq = quantize_bias(RNG.standard_normal(12).astype(F32), x_scale, w_scale)
    attrs = dict(x_scale=x_scale, x_zero_point=x_zp, x_dtype=x_dtype, w_scale=[float(s) for s in w_scale],
                 strides=[stride, stride], pads=[pad] * 4, group=groups, kernel_shape=[3, 3])
    (got,) = ours("QLinearConvFused", [x, wq, bq], attrs, domain="workbench")
    xq = ref_quantize(x, x_scale, x_zp, x_dtype) - x_zp
    acc = ref_conv(xq, wq.astype(np.int64), stride, pad, groups) + bq.astype(np.int64)[None, :, None, None]
    assert channels == 8 or np.abs(acc).max() > 2**24
    np.testing.assert_array_equal(got, ref_dequant(acc, x_scale, w_scale, 1, 4))


@needs_kernels("Conv")
def test_qlinear_conv_fp8_follows_its_recipe():
    x = RNG.standard_normal((1, 4, 6, 6)).astype(F32)
    wq, w_scale = quantize_weights(RNG.standard_normal((3, 4, 3, 3)).astype(F32), None, "fp8")
    x_scale = float(F32(np.abs(x).max() / 448))
    attrs = dict(x_scale=x_scale, x_dtype="float8_e4m3fn", w_scale=[float(w_scale[0])], pads=[1] * 4)
    (got,) = ours("QLinearConvFused", [x, wq], attrs, domain="workbench")
    xq = np.clip(x / F32(x_scale), -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    want = ref_conv(xq, wq.astype(np.float64), 1, 1, 1) * (F32(x_scale) * w_scale[0])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change, match", [
    ({"x_scale": -1.0}, "x_scale must be a positive"),
    ({"x_scale": None}, "x_scale must be a positive"),
    ({"w_scale": [1.0, 2.0]}, "w_scale has 2 values; W has 3 channels"),
    ({"w_scale": []}, "non-empty list"),
    ({"x_dtype": "int16"}, "x_dtype/y_dtype"),
    ({"y_scale": float("inf")}, "y_scale"),
    ({"activation": "Swish"}, "fused activation 'Swish' is unknown"),
])
def test_bad_recipes_are_shape_errors(change, match):
    spec = spec_for("QGemm", "workbench")
    attrs = attributes(spec, {"x_scale": 0.1, "w_scale": [0.1], **change}, "QGemm")
    with pytest.raises(ShapeError, match=match):
        spec.shape_rule(Info("float32", ("n", 8)), Info("int8", (3, 8)), None, **attrs)


def test_qgemm_shape_rule_keeps_symbolic_dims():
    spec = spec_for("QGemm", "workbench")
    attrs = attributes(spec, {"x_scale": 0.1, "w_scale": [0.1, 0.2, 0.3]}, "QGemm")
    out = spec.shape_rule(Info("float32", ("batch", "seq", 8)), Info("int8", (3, 8)), None, **attrs)
    assert out == Info("float32", ("batch", "seq", 3))
    with pytest.raises(ShapeError, match="does not match W's K"):
        spec.shape_rule(Info("float32", ("batch", 7)), Info("int8", (3, 8)), None, **attrs)


def test_qgemm_fused_activation():
    x, wq, b, attrs = gemm_case(6, 16, 4)
    (plain,) = ours("QGemm", [x, wq, b], attrs, domain="workbench")
    (relu,) = ours("QGemm", [x, wq, b], {**attrs, "activation": "Relu"}, domain="workbench")
    (clip,) = ours("QGemm", [x, wq, b], {**attrs, "activation": "Clip", "activation_alpha": 0.0,
                                         "activation_beta": 0.5}, domain="workbench")
    np.testing.assert_array_equal(relu, np.maximum(plain, 0))
    np.testing.assert_array_equal(clip, np.clip(plain, 0, 0.5))


@needs_kernels("Conv")
def test_qlinear_conv_residual_then_activation():
    x = RNG.standard_normal((1, 4, 5, 5)).astype(F32)
    wq, w_scale = quantize_weights(RNG.standard_normal((4, 4, 3, 3)).astype(F32), 0, "int8")
    attrs = dict(x_scale=float(F32(np.abs(x).max() / 127)), w_scale=[float(s) for s in w_scale], pads=[1] * 4)
    residual = RNG.standard_normal((1, 4, 5, 5)).astype(F32)
    (plain,) = ours("QLinearConvFused", [x, wq], attrs, domain="workbench")
    (fused,) = ours("QLinearConvFused", [x, wq, None, residual], {**attrs, "activation": "Relu"},
                    domain="workbench")
    np.testing.assert_array_equal(fused, np.maximum(plain + residual, 0))
