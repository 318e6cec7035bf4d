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
    """ONNX QuantizeLinear: the float32 quotient rounded half to even (a float64 quotient may round the
    other way where the float32 one lands on a half)."""
    info = np.iinfo(dtype)
    q = np.rint(x.astype(F32) / F32(scale)).astype(np.int64)
    return np.clip(q + zp, info.min, info.max)


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


# ---- int8 between layers: X already quantized, y_quantized output, quantized residual ------------
ACTIVATIONS = {  # kind -> (attrs, float32 reference)
    None: ({}, lambda v: v),
    "Relu": ({"activation": "Relu"}, lambda v: np.maximum(v, F32(0))),
    "Clip": ({"activation": "Clip", "activation_alpha": -1.0, "activation_beta": 2.0},
             lambda v: np.clip(v, F32(-1), F32(2))),
    "LeakyRelu": ({"activation": "LeakyRelu", "activation_alpha": 0.1}, lambda v: np.where(v < 0, v * F32(0.1), v)),
}


def grid_ints(shape, dtype):
    """Fresh grid integers over the whole range of an int8/uint8 type."""
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max + 1, shape).astype(dtype)


def ref_grid(v, y_scale, y_zp, y_dtype):
    """The stated output rule on float32 v: saturate(round_half_even(v / y_scale) + y_zp) (v / y_scale in IEEE float32)."""
    info = np.iinfo(y_dtype)
    steps = (v.astype(F32) / F32(y_scale)).astype(np.float64)
    return np.clip(np.rint(steps) + y_zp, info.min, info.max).astype(y_dtype)


def ref_residual(r, r_scale, r_zp):
    """float32(r - r_zp) * float32(r_scale): one IEEE float32 multiply."""
    return (r.astype(np.int64) - r_zp).astype(F32) * F32(r_scale)


def output_grid(y_float, y_dtype):
    """A y_scale that saturates the largest outputs, and a zero point, for a float output."""
    zp = 0 if y_dtype == "int8" else 100
    return float(F32(np.abs(y_float).max() / 160)), zp


def chained_attrs(x_scale, x_zp, x_dtype, w_scale, y_scale, y_zp, y_dtype, activation):
    return dict(x_scale=x_scale, x_zero_point=x_zp, x_dtype=x_dtype, w_scale=[float(s) for s in w_scale],
                y_scale=y_scale, y_zero_point=y_zp, y_dtype=y_dtype, y_quantized=1, **ACTIVATIONS[activation][0])


@needs_kernels("Conv")
@pytest.mark.parametrize("channels, stride, pad, groups, x_dtype, x_zp, y_dtype, residual, activation", [
    (8, 1, 1, 1, "int8", 0, "int8", "int8", "Relu"),
    (8, 2, 0, 2, "uint8", 128, "uint8", None, None),
    (6, 1, 2, 3, "int8", -3, "uint8", "uint8", "Clip"),
    (8, 2, 1, 1, "uint8", 100, "int8", "float32", "LeakyRelu"),
    (64, 1, 1, 1, "int8", 0, "int8", "int8", None),
])
def test_qlinear_conv_int8_in_and_out(channels, stride, pad, groups, x_dtype, x_zp, y_dtype, residual, activation):
    xq = grid_ints((2, channels, 6, 6), x_dtype)
    wq, w_scale = quantize_weights(RNG.standard_normal((12, channels // groups, 3, 3)).astype(F32), 0, "int8")
    x_scale = float(F32(0.05))
    bq = quantize_bias(RNG.standard_normal(12).astype(F32), x_scale, w_scale)
    acc = ref_conv(xq.astype(np.int64) - x_zp, wq.astype(np.int64), stride, pad, groups) + bq[None, :, None, None]
    y = ref_dequant(acc, x_scale, w_scale, 1, 4)
    r_scale, r_zp = float(F32(0.07)), {"int8": -5, "uint8": 90}.get(residual, 0)
    r = None
    if residual is not None:
        r = grid_ints(y.shape, residual) if residual != "float32" else RNG.standard_normal(y.shape).astype(F32)
        y = y + (ref_residual(r, r_scale, r_zp) if residual != "float32" else r)
    y = ACTIVATIONS[activation][1](y)
    y_scale, y_zp = output_grid(y, y_dtype)
    attrs = dict(chained_attrs(x_scale, x_zp, x_dtype, w_scale, y_scale, y_zp, y_dtype, activation),
                 strides=[stride, stride], pads=[pad] * 4, group=groups, kernel_shape=[3, 3])
    if residual in ("int8", "uint8"):
        attrs.update(r_scale=r_scale, r_zero_point=r_zp)
    (got,) = ours("QLinearConvFused", [xq, wq, bq, r], attrs, domain="workbench")
    want = ref_grid(y, y_scale, y_zp, y_dtype)
    assert got.dtype == np.dtype(y_dtype) and len(np.unique(got)) > 20
    np.testing.assert_array_equal(got, want)
    assert np.any(want == np.iinfo(y_dtype).max) or np.any(want == np.iinfo(y_dtype).min)  # saturation is tested
    # the float path agrees: X given as float32 grid values, the output rounded but kept float32
    x_float = (xq.astype(F32) - F32(x_zp)) * F32(x_scale)
    (rounded,) = ours("QLinearConvFused", [x_float, wq, bq, r], {**attrs, "y_quantized": 0}, domain="workbench")
    np.testing.assert_array_equal(rounded, (got.astype(F32) - F32(y_zp)) * F32(y_scale))


@pytest.mark.parametrize("shape, n, x_dtype, x_zp, y_dtype, activation", [
    ((7, 33), 5, "int8", 0, "int8", None),
    ((3, 4, 20), 6, "uint8", 128, "int8", "Relu"),
    ((5, 300), 4, "int8", -2, "uint8", "Clip"),
    ((2, 3, 16), 3, "uint8", 7, "uint8", "LeakyRelu"),
])
def test_qgemm_int8_in_and_out(shape, n, x_dtype, x_zp, y_dtype, activation):
    xq = grid_ints(shape, x_dtype)
    wq, w_scale = quantize_weights(RNG.standard_normal((n, shape[-1])).astype(F32), 0, "int8")
    x_scale = float(F32(0.02))
    bq = quantize_bias(RNG.standard_normal(n).astype(F32), x_scale, w_scale)
    acc = (xq.astype(np.int64) - x_zp) @ wq.astype(np.int64).T + bq
    y = ACTIVATIONS[activation][1](ref_dequant(acc, x_scale, w_scale, len(shape) - 1, len(shape)))
    y_scale, y_zp = output_grid(y, y_dtype)
    attrs = chained_attrs(x_scale, x_zp, x_dtype, w_scale, y_scale, y_zp, y_dtype, activation)
    (got,) = ours("QGemm", [xq, wq, bq], attrs, domain="workbench")
    assert got.dtype == np.dtype(y_dtype) and got.shape == (*shape[:-1], n)
    np.testing.assert_array_equal(got, ref_grid(y, y_scale, y_zp, y_dtype))
    x_float = (xq.astype(F32) - F32(x_zp)) * F32(x_scale)
    (requantized,) = ours("QGemm", [x_float, wq, bq], attrs, domain="workbench")
    np.testing.assert_array_equal(requantized, got)  # a float X on the grid quantizes back to xq exactly


@pytest.mark.parametrize("x_dtype, change, residual, match", [
    ("int8", {"x_dtype": "uint8"}, None, "X is int8; a quantized layer takes a float X"),
    ("int32", {}, None, "X is int32"),
    ("float32", {"y_quantized": 1}, None, "y_quantized=1 writes grid integers, so it needs y_scale"),
    ("float32", {"y_quantized": 1, "y_scale": 0.1, "y_dtype": "float8_e4m3fn"}, None, "y_dtype of"),
    ("float32", {"y_quantized": 2, "y_scale": 0.1}, None, "y_quantized must be 0 or 1"),
    ("float32", {}, "int8", "needs r_scale"),
    ("float32", {"r_scale": -1.0}, "uint8", "needs r_scale"),
    ("float32", {"r_scale": 0.1}, "int32", "a quantized residual must be one of"),
])
def test_bad_int8_inputs_and_outputs_are_shape_errors(x_dtype, change, residual, match):
    spec = spec_for("QLinearConvFused", "workbench")
    attrs = attributes(spec, {"x_scale": 0.1, "w_scale": [0.1], "pads": [1] * 4, **change}, "QLinearConvFused")
    r = None if residual is None else Info(residual, ("n", 3, 8, 8))
    with pytest.raises(ShapeError, match=match):
        spec.shape_rule(Info(x_dtype, ("n", 4, 8, 8)), Info("int8", (3, 4, 3, 3)), None, r, **attrs)


def test_int8_shape_rules_keep_symbolic_dims():
    conv = spec_for("QLinearConvFused", "workbench")
    attrs = attributes(conv, {"x_scale": 0.1, "w_scale": [0.1], "pads": [1] * 4, "y_scale": 0.2, "y_dtype": "uint8",
                              "y_quantized": 1, "r_scale": 0.3}, "QLinearConvFused")
    out = conv.shape_rule(Info("int8", ("n", 4, "h", 8)), Info("int8", (3, 4, 3, 3)), None,
                          Info("int8", ("n", 3, "h", 8)), **attrs)
    assert out == Info("uint8", ("n", 3, "h", 8))
    gemm = spec_for("QGemm", "workbench")
    attrs = attributes(gemm, {"x_scale": 0.1, "w_scale": [0.1], "x_dtype": "uint8", "y_scale": 0.2,
                              "y_quantized": 1}, "QGemm")
    assert gemm.shape_rule(Info("uint8", ("b", "s", 8)), Info("int8", (3, 8)), None, **attrs) == \
        Info("int8", ("b", "s", 3))
    plain = attributes(gemm, {"x_scale": 0.1, "w_scale": [0.1]}, "QGemm")
    assert gemm.shape_rule(Info("float16", ("b", 8)), Info("int8", (3, 8)), None, **plain) == Info("float32", ("b", 3))
