"""INT8 tactics (QGemm, QLinearConvFused) against the CPU integer kernels: bit-exact where the recipe is,
within a grid step where a tactic folds its scales (int8-mma) or cuDNN adds a float bias (int8-cudnn)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from tests.gpu.helpers import NotApplicable, rel_l2, run_tactic
from workbench.backends.cpu.kernels.quantized import qgemm, qlinear_conv_fused
from workbench.ir.opdefs.fused import ACTIVATION_ATTRS, CONV_ATTRS
from workbench.ir.opdefs.quantized import QUANT_ATTRS
from workbench.quant.numerics import FP8

pytestmark = pytest.mark.gpu


def _attrs(n, rng, act=None, x_dtype="int8", grid=False, **extra):
    a = dict(QUANT_ATTRS, **ACTIVATION_ATTRS)
    a.update(x_scale=float(np.float32(0.05)), x_dtype=x_dtype, x_zero_point=128 if x_dtype == "uint8" else 0,
             w_scale=[float(s) for s in rng.uniform(0.001, 0.01, n).astype(np.float32)], activation=act)
    if grid:
        a.update(y_scale=float(np.float32(0.07)), y_zero_point=3, y_dtype="int8")
    a.update(extra)
    return a


def _exact(tactic, op, inputs, attrs, want, exact=True, params=None):
    try:
        got = run_tactic(tactic, op, inputs, attrs, "int8", params=params, const=(1, 2), domain="workbench",
                         out_dtype="float32")[0]
    except NotApplicable as e:
        pytest.fail(f"{tactic} does not apply: {e}")
    want = np.asarray(want, np.float64)
    if exact:
        bad = int(np.sum(got != want))
        assert bad == 0, f"{tactic}: {bad} of {want.size} values differ from the CPU integer kernel " \
                         f"(max |diff| {np.abs(got - want).max():.3g})"
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_dtype", ["int8", "uint8"])
@pytest.mark.parametrize("act,grid,bias", [(None, False, True), ("Relu", False, True), ("Relu", True, False),
                                           ("Gelu", False, True)])
@pytest.mark.parametrize("x_half,algo", [(False, -1), (True, -1), (True, 0)])
def test_qgemm(x_dtype, act, grid, bias, x_half, algo):
    """algo -1: cuBLAS gemmEx; 0: cuBLASLt's first heuristic algorithm (both exact int32 sums)."""
    rng = np.random.default_rng()
    m, k, n = 3 * 128, 768, 256
    x = (rng.standard_normal((3, 128, k)) * 2).astype(np.float16 if x_half else np.float32)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    b = rng.integers(-5000, 5000, n).astype(np.int32) if bias else None
    attrs = _attrs(n, rng, act, x_dtype, grid)
    want = qgemm(x.astype(np.float32), w, b, **attrs)
    _exact("int8-gemm", "QGemm", [x, w, b], attrs, want, exact=act != "Gelu", params={"algo": algo})
    assert want.shape == (3, 128, n) and m == 384


@pytest.mark.parametrize("tactic,kernel,stride,pads,residual,act", [
    ("int8-gemm", 1, 1, 0, True, "Relu"),
    ("int8-gemm", 1, 2, 0, False, None),
    ("int8-conv", 3, 1, 1, True, "Relu"),
    ("int8-conv", 3, 2, 1, False, "Relu"),
    ("int8-conv", 1, 1, 0, False, None),
])
def test_qconv(tactic, kernel, stride, pads, residual, act):
    rng = np.random.default_rng()
    n, c, h, k = 2, 64, 14, 128
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = rng.integers(-127, 128, (k, c, kernel, kernel)).astype(np.int8)
    b = rng.integers(-5000, 5000, k).astype(np.int32)
    conv = dict(CONV_ATTRS, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pads] * 4,
                dilations=[1, 1], group=1)
    attrs = _attrs(k, rng, act, **conv)
    out = (h + 2 * pads - kernel) // stride + 1
    r = rng.standard_normal((n, k, out, out)).astype(np.float32) if residual else None
    want = qlinear_conv_fused(x, w, b, r, **attrs)
    _exact(tactic, "QLinearConvFused", [x, w, b, r], attrs, want)


# ------------------------------------------------------------------------------- float8 (E4M3)


def _fp8_weights(rng, shape):
    return np.clip(rng.standard_normal(shape) * 60, -448, 448).astype(ml_dtypes.float8_e4m3fn)


def _close(tactic, op, inputs, attrs, want, precision, rtol, params=None, out_dtype="float32"):
    try:
        got = run_tactic(tactic, op, inputs, attrs, precision, params=params, const=(1, 2), domain="workbench",
                         out_dtype=out_dtype)[0]
    except NotApplicable as e:
        pytest.fail(f"{tactic} does not apply: {e}")
    err = rel_l2(got, want)
    assert err <= rtol, f"{tactic}: relative L2 error {err:.2e} over {rtol:.0e} against the CPU kernel"
    return got


@pytest.mark.parametrize("out,act,grid", [("float32", None, False), ("float32", "Relu", True),
                                          ("float16", "Gelu", False)])
def test_fp8_qgemm(out, act, grid):
    rng = np.random.default_rng()
    k, n = 768, 256
    x = (rng.standard_normal((2, 64, k)) * 3).astype(np.float32)
    w = _fp8_weights(rng, (n, k))
    b = rng.standard_normal(n).astype(np.float32)
    attrs = _attrs(1, rng, act, FP8)
    if grid:
        attrs.update(y_scale=float(np.float32(0.01)), y_zero_point=0, y_dtype=FP8)
    want = qgemm(x, w, b, **attrs)
    # Hopper's FP8 tensor cores sum in less than float32 between cuBLASLt's promotions (~1e-4); on an
    # FP8 output grid that moves the odd value by one E4M3 step
    _close("fp8-gemm", "QGemm", [x, w, b], attrs, want, "fp8", 1e-2 if grid else 2e-3,
           params={"algo": 0, "out": out})


@pytest.mark.parametrize("tactic,kernel,stride,pads,residual", [
    ("fp8-gemm", 1, 1, 0, True), ("fp8-mma", 1, 1, 0, True), ("fp8-mma", 1, 2, 0, False),
    ("fp8-conv", 3, 1, 1, True), ("fp8-conv", 3, 2, 1, False),
    ("fp8-cudnn", 3, 1, 1, True), ("fp8-cudnn", 1, 1, 0, False)])
def test_fp8_qconv(tactic, kernel, stride, pads, residual):
    rng = np.random.default_rng()
    n, c, h, k = 2, 64, 14, 128
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = _fp8_weights(rng, (k, c, kernel, kernel))
    b = rng.standard_normal(k).astype(np.float32)
    conv = dict(CONV_ATTRS, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pads] * 4,
                dilations=[1, 1], group=1)
    attrs = _attrs(1, rng, "Relu", FP8, **conv)
    out = (h + 2 * pads - kernel) // stride + 1
    r = rng.standard_normal((n, k, out, out)).astype(np.float32) if residual else None
    want = qlinear_conv_fused(x, w, b, r, **attrs)
    _close(tactic, "QLinearConvFused", [x, w, b, r], attrs, want, "fp8", 1e-5 if tactic == "fp8-conv" else 1e-3)


@pytest.mark.parametrize("config", range(3))
@pytest.mark.parametrize("mma", ["wgmma", "tma", "pingpong"])
@pytest.mark.parametrize("rows,k,n,out,act,channels", [(300, 80, 48, "float32", "Relu", 48),
                                                       (384, 768, 200, "float16", "Gelu", 1),
                                                       (4096, 1024, 256, "float32", None, 1)])
def test_fp8_mma_qgemm(config, mma, rows, k, n, out, act, channels):
    """The generated kernel on E4M3 operands, each configuration the tactic would time, against the CPU
    kernel: tails in every dimension, per-tensor and per-channel weight scales, fp16 and float32 out."""
    params = _config(config, n, k, out, mma)
    rng = np.random.default_rng()
    x = (rng.standard_normal((rows, k)) * 3).astype(np.float32)
    w = _fp8_weights(rng, (n, k))
    b = rng.standard_normal(n).astype(np.float32) if channels == 1 else None
    attrs = _attrs(channels, rng, act, FP8)
    want = qgemm(x, w, b, **attrs)
    # as test_fp8_qgemm: the FP8 tensor cores' sums run a little short of float32
    _close("fp8-mma", "QGemm", [x, w, b], attrs, want, "fp8", 2e-3, params=params, out_dtype=out)


# ------------------------------------------------------------------------------- int8 graphs and chains
def _conv_case(rng, kernel, stride, residual, chained):
    """A QLinearConvFused case; chained: X arrives as int8, the output is int8 on a grid, the residual int8."""
    n, c, h, k = 2, 64, 14, 128
    conv = dict(CONV_ATTRS, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[kernel // 2] * 4,
                dilations=[1, 1], group=1)
    attrs = _attrs(k, rng, "Relu", **conv)
    out = (h + 2 * (kernel // 2) - kernel) // stride + 1
    if chained:
        x = rng.integers(-127, 128, (n, c, h, h)).astype(np.int8)
        attrs.update(y_scale=float(np.float32(0.05)), y_zero_point=0, y_dtype="int8", y_quantized=1)
        r = rng.integers(-127, 128, (n, k, out, out)).astype(np.int8) if residual else None
        if residual:
            attrs.update(r_scale=float(np.float32(0.03)), r_zero_point=0)
    else:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        r = rng.standard_normal((n, k, out, out)).astype(np.float32) if residual else None
    w = rng.integers(-127, 128, (k, c, kernel, kernel)).astype(np.int8)
    b = rng.integers(-5000, 5000, k).astype(np.int32)
    return [x, w, b, r], attrs


@pytest.mark.parametrize("kernel,stride,residual", [(3, 1, True), (3, 2, False), (1, 1, True)])
@pytest.mark.parametrize("chained", [False, True])
@pytest.mark.parametrize("tactic,split", [("int8-cudnn", False), ("int8-held", False), ("int8-held", True)])
def test_int8_cudnn_graph(tactic, split, kernel, stride, residual, chained):
    rng = np.random.default_rng()
    inputs, attrs = _conv_case(rng, kernel, stride, residual, chained)
    from workbench.backends.cuda.select import BUILD_TOLERANCE_SCALE
    from workbench.backends.cuda.site import GRID_TOLERANCE

    held = tactic == "int8-held"  # operands dequantized to fp16: values within 2**-11 before rounding
    if held and chained:  # a calibrated grid (the outputs span it), as the build's chained layers have
        attrs["y_scale"] = float(np.float32(np.abs(qlinear_conv_fused(*inputs, **dict(attrs, y_quantized=0,
                                                                                      y_scale=None))).max() / 127))
    want = qlinear_conv_fused(*inputs, **attrs)
    got = run_tactic(tactic, "QLinearConvFused", inputs, attrs, "int8", const=(1, 2), domain="workbench",
                     out_dtype="int8" if chained else "float32", params={"plan": 0, "split": split})[0]
    if chained:  # the grid integers: cuDNN rounds a float bias added after scaling, so the odd step may differ
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
        assert got.dtype == np.int8 and diff.max() <= 1 and (diff > 0).mean() < (5e-2 if held else 1e-3)
        assert rel_l2(got, want) <= GRID_TOLERANCE * BUILD_TOLERANCE_SCALE  # what a build accepts
    else:
        assert rel_l2(got, want) <= (1e-3 if held else 1e-5)


@pytest.mark.parametrize("tactic,kernel", [("int8-gemm", 1), ("int8-conv", 3)])
def test_chained_int8_tactics_are_exact(tactic, kernel):
    rng = np.random.default_rng()
    inputs, attrs = _conv_case(rng, kernel, 1, True, chained=True)
    want = qlinear_conv_fused(*inputs, **attrs)
    got = run_tactic(tactic, "QLinearConvFused", inputs, attrs, "int8", const=(1, 2), domain="workbench",
                     out_dtype="int8")[0]
    assert got.dtype == np.int8 and np.array_equal(got, want)


@pytest.mark.parametrize("tactic,x_dtype", [("int8-cudnn", "int8"), ("fp8-cudnn", FP8), ("int8-conv", "int8"),
                                            ("fp8-conv", FP8), ("int8-held", "int8"), ("fp8-held", FP8)])
def test_rgb_stem_pads_channels(tactic, x_dtype):
    rng = np.random.default_rng()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    w = _fp8_weights(rng, (64, 3, 7, 7)) if x_dtype == FP8 else rng.integers(-127, 128, (64, 3, 7, 7)).astype(np.int8)
    b = rng.standard_normal(64).astype(np.float32) if x_dtype == FP8 else rng.integers(-5000, 5000, 64).astype(np.int32)
    conv = dict(CONV_ATTRS, kernel_shape=[7, 7], strides=[2, 2], pads=[3] * 4, dilations=[1, 1], group=1)
    attrs = _attrs(1 if x_dtype == FP8 else 64, rng, "Relu", x_dtype, **conv)
    want = qlinear_conv_fused(x, w, b, None, **attrs)
    precision = "fp8" if x_dtype == FP8 else "int8"
    exact = tactic in ("int8-conv", "fp8-conv")
    _close(tactic, "QLinearConvFused", [x, w, b, None], attrs, want, precision, 1e-5 if exact else 1e-3)


@pytest.mark.parametrize("tactic,kernel,x_dtype", [("int8-gemm", 1, "int8"), ("int8-conv", 3, "int8"),
                                                   ("int8-cudnn", 3, "int8"), ("int8-held", 3, "int8"),
                                                   ("fp8-gemm", 1, FP8), ("fp8-conv", 3, FP8),
                                                   ("fp8-cudnn", 3, FP8), ("fp8-held", 3, FP8)])
def test_float16_outputs_for_fp16_readers(tactic, kernel, x_dtype):
    """A quantized layer read by fp16 layers writes fp16 (the builder's storage dtype): half the bytes."""
    rng = np.random.default_rng()
    fp8 = x_dtype == FP8
    n, c, h, k = 2, 64, 14, 128
    x = (rng.standard_normal((n, c, h, h)) * 2).astype(np.float16)
    w = _fp8_weights(rng, (k, c, kernel, kernel)) if fp8 else rng.integers(-127, 128, (k, c, kernel, kernel)).astype(np.int8)
    b = rng.standard_normal(k).astype(np.float32) if fp8 else rng.integers(-5000, 5000, k).astype(np.int32)
    r = rng.standard_normal((n, k, h, h)).astype(np.float16)
    conv = dict(CONV_ATTRS, kernel_shape=[kernel, kernel], strides=[1, 1], pads=[kernel // 2] * 4,
                dilations=[1, 1], group=1)
    attrs = _attrs(1 if fp8 else k, rng, "Relu", x_dtype, **conv)
    want = qlinear_conv_fused(x.astype(np.float32), w, b, r.astype(np.float32), **attrs)
    got = _close(tactic, "QLinearConvFused", [x, w, b, r], attrs, want, "fp8" if fp8 else "int8", 1e-3,
                 out_dtype="float16")
    assert np.array_equal(got, got.astype(np.float16).astype(np.float64)), "the output is not fp16"


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("channels,nhwc", [(64, True), (64, False), (6, True)])
def test_max_pool_moves_grid_integers(dtype, channels, nhwc):
    """NHWC with channels in fours: four per thread (a SIMD byte max); else one per thread."""
    from workbench.backends.cpu.kernels.pooling import max_pool

    rng = np.random.default_rng()
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (2, channels, 57, 56)).astype(dtype)
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], auto_pad="NOTSET",
                 ceil_mode=0, storage_order=0, _indices=0)
    got = run_tactic("window", "MaxPool", [x], attrs, "fp32", out_dtype=dtype, channels_last=(0,) if nhwc else ())[0]
    want = max_pool(x, **attrs)
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, want)


# ------------------------------------------------------------------------------- the generated int8 kernel
def _config(config: int, n: int, k: int, out: str, mma: str) -> dict:
    """Tactic params for the config-th configuration the generated kernel would time, or a skip."""
    from workbench.backends.cuda.imma import configs

    found = configs(n, k, out, None, _runs(mma))
    if config >= len(found):
        pytest.skip(f"{len(found)} configurations for N={n}, K={k}, {out} outputs")
    bm, bn, stages = found[config]
    return {"tile": [bm, bn], "stages": stages, "mma": mma}


def _runs(mma: str) -> str:
    """The main-loop form, or a skip where this device cannot run it (wgmma: sm_90a only)."""
    from workbench.backends.cuda.imma import missing

    why = missing(mma)
    if why:
        pytest.skip(why)
    return mma


@pytest.mark.parametrize("tile", [[128, 128], [128, 64], [64, 128], [64, 64]])
@pytest.mark.parametrize("mma,stages", [("sync", 1), ("sync", 2), ("sync", 4), ("wgmma", 1), ("wgmma", 2),
                                        ("wgmma", 3), ("wgmma", 5), ("tma", 2), ("tma", 3), ("tma", 6),
                                        ("pingpong", 2), ("pingpong", 4)])
@pytest.mark.parametrize("rows,k,n", [(300, 80, 48), (384, 784, 200), (130, 64, 96), (4096, 1024, 256)])
def test_imma_product_is_exact(tile, mma, stages, rows, k, n):
    """The tensor-core product alone (acc written as float32, exact below 2**24): tails in every dimension,
    one K slice, several (the pipeline at each depth: tma's slots refilled over several rounds) and a K
    tail of 16, in every loop form."""
    import cupy as cp

    from workbench.backends.cuda.imma import ImmaKernel, holds_whole, layout

    _runs(mma)
    whole = holds_whole(k, stages, mma)
    if mma == "wgmma" and stages < 3 and not whole:
        pytest.skip(f"{stages} wgmma slot(s) hold K whole or not at all: K={k}")
    if layout(*tile, stages, "float32", None, mma) is None:
        pytest.skip(f"tile {tile} with {stages} stages does not fit shared memory with float32 outputs")
    rng = np.random.default_rng()
    x = rng.integers(-128, 128, (rows, k)).astype(np.int8)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    y = cp.empty((rows, n), np.float32)
    kernel = ImmaKernel(["y = (float)acc;"], (), None, "float32", *tile, stages, mma=mma, whole=whole)
    kernel(cp.asarray(x), cp.asarray(w), None, y)
    want = x.astype(np.int64) @ w.astype(np.int64).T
    assert np.array_equal(y.get().astype(np.int64), want), f"{int(np.sum(y.get() != want))} values differ"


@pytest.mark.parametrize("tile,stages,out", [((128, 128), 3, "float32"), ((64, 256), 2, "float32"),
                                             ((128, 64), 5, "float16")])
def test_pingpong_walks_many_tiles_a_block(tile, stages, out):
    """Several tiles a warpgroup: the ring of slots runs on across tiles (its phases wrap many times), the
    two warpgroups alternate, and every tile's edge (rows, columns, a K tail) is zero-filled and cut."""
    import cupy as cp

    from workbench.backends.cuda.imma import ImmaKernel, layout

    _runs("pingpong")
    if layout(*tile, stages, out, None, "pingpong") is None:
        pytest.skip(f"tile {tile} with {stages} stages does not fit shared memory")
    rng = np.random.default_rng()
    rows, k, n = 20000, 1000 - 8, 640
    x = rng.integers(-128, 128, (rows, k)).astype(np.int8)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    y = cp.full((rows, n), 7, out)
    kernel = ImmaKernel(["y = (float)acc;"] if out == "float32" else ["y = (float)(acc >> 8);"], (), None,
                        out, *tile, stages, mma="pingpong")
    kernel(cp.asarray(x), cp.asarray(w), None, y)
    want = x.astype(np.int64) @ w.astype(np.int64).T
    got = y.get().astype(np.int64)
    if out == "float16":
        want = (want >> 8).astype(np.float16).astype(np.int64)
    assert np.array_equal(got, want), f"{int(np.sum(got != want))} values differ"


def _residual(rng, kind: str | None, shape: tuple, attrs: dict):
    """A residual input: int8 grid integers (r_scale set in attrs), float16 values, or None."""
    if kind == "int8":
        attrs.update(r_scale=float(np.float32(0.03)), r_zero_point=0)
        return rng.integers(-127, 128, shape).astype(np.int8)
    return (rng.standard_normal(shape) * 20).astype(np.float16) if kind else None


def _as_read(r):
    """The residual as the CPU kernel takes it: grid integers as they are, floats as float32."""
    return r if r is None or r.dtype == np.int8 else r.astype(np.float32)


def _within_a_step(got, want):
    from workbench.backends.cuda.select import BUILD_TOLERANCE_SCALE
    from workbench.backends.cuda.site import GRID_TOLERANCE, mismatch

    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if got.dtype == np.int8:  # scales folded into one multiply-add: a value at a half may round the other way
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, f"{int((diff > 0).sum())} values moved a step"
    assert mismatch([got], [want], "int8", BUILD_TOLERANCE_SCALE) is None


@pytest.mark.parametrize("config", range(4))
@pytest.mark.parametrize("mma", ["sync", "wgmma", "tma", "pingpong"])
@pytest.mark.parametrize("rows,k,n,out,act", [(300, 80, 48, "int8", "Relu"), (384, 768, 200, "float16", "Gelu"),
                                              (130, 64, 96, "float32", None), (256, 3072, 64, "int8", "Gelu")])
def test_int8_mma_qgemm(config, mma, rows, k, n, out, act):
    """Each configuration the tactic would time (imma.configs)."""
    params = _config(config, n, k, out, mma)
    rng = np.random.default_rng()
    x = (rng.standard_normal((rows, k)) * 2).astype(np.float32)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    b = rng.integers(-5000, 5000, n).astype(np.int32)
    extra = dict(y_scale=float(np.float32(0.5)), y_zero_point=0, y_dtype="int8", y_quantized=1) if out == "int8" else {}
    attrs = _attrs(n, rng, act, **extra)
    want = qgemm(x, w, b, **attrs)
    got = run_tactic("int8-mma", "QGemm", [x, w, b], attrs, "int8",
                     params=params, const=(1, 2), domain="workbench",
                     out_dtype=out)[0]
    _within_a_step(got, want.astype(got.dtype) if out != "int8" else want)


@pytest.mark.parametrize("stride,residual,zero_point", [(1, "int8", 0), (1, "float16", 3), (2, None, -5)])
@pytest.mark.parametrize("tile,stages,c,mma", [([128, 64], 1, 64, "sync"), ([128, 128], 2, 128, "sync"),
                                              ([128, 64], 3, 64, "wgmma"), ([128, 128], 4, 128, "wgmma"),
                                              ([128, 128], 2, 64, "tma"), ([256, 128], 4, 128, "tma")])
def test_int8_mma_pointwise_conv_chained(stride, residual, zero_point, tile, stages, c, mma):
    """The residual loaded with the first K slice where shared memory allows, else after the product."""
    from workbench.backends.cuda.imma import layout

    if layout(*tile, stages, "int8", residual, _runs(mma)) is None:
        pytest.skip(f"tile {tile} with {stages} stages does not fit a {residual} residual")
    rng = np.random.default_rng()
    n, h, k = 2, 14, 128
    out = (h - 1) // stride + 1
    conv = dict(CONV_ATTRS, kernel_shape=[1, 1], strides=[stride, stride], pads=[0] * 4, dilations=[1, 1], group=1)
    attrs = _attrs(k, rng, "Relu", **conv)
    attrs.update(y_scale=float(np.float32(2.0)), y_zero_point=zero_point, y_dtype="int8", y_quantized=1)
    x = rng.integers(-127, 128, (n, c, h, h)).astype(np.int8)
    w = rng.integers(-127, 128, (k, c, 1, 1)).astype(np.int8)
    b = rng.integers(-5000, 5000, k).astype(np.int32)
    r = _residual(rng, residual, (n, k, out, out), attrs)
    want = qlinear_conv_fused(x, w, b, _as_read(r), **attrs)
    got = run_tactic("int8-mma", "QLinearConvFused", [x, w, b, r], attrs, "int8",
                     params={"tile": tile, "stages": stages, "mma": mma}, const=(1, 2), domain="workbench",
                     out_dtype="int8")[0]
    _within_a_step(got, want)


@pytest.mark.parametrize("c,kernel,stride,pad,dilation,residual,x_dtype", [
    (3, 7, 2, 3, 1, None, "float32"),       # an RGB stem: C padded to 4, 4-byte loads
    (3, 7, 2, 3, 1, None, "float16"),
    (64, 3, 1, 1, 1, "int8", "float32"),    # 16-byte loads, a chained residual
    (8, 3, 2, 1, 2, "float16", "float16"),  # dilated, strided, a float residual
    (16, 5, 1, 0, 1, None, "float32"),      # no padding: every patch inside the image
    (96, 3, 1, 1, 1, None, "float32"),      # more channels than the one-pass NHWC quantizer takes
    (32, 3, 2, 1, 1, "int8", "int8"),       # X chained: int8 NHWC as the layer before wrote it
    (4, 3, 2, 1, 1, "int8", "int8"),        # chained and folded space-to-depth by a copy
    (3, 4, 2, 2, 1, None, "float32"),       # an even kernel: folded taps without an offset
])
@pytest.mark.parametrize("config", range(2))
@pytest.mark.parametrize("fold", [1, 2])
@pytest.mark.parametrize("mma", ["sync", "wgmma"])
def test_int8_implicit_conv(c, kernel, stride, pad, dilation, residual, x_dtype, config, fold, mma):
    """Patches read in place (implicit GEMM) against the CPU kernel; rows (output pixels) with tails;
    X quantized from NCHW into NHWC int8 with its channels padded, or folded space-to-depth (fold 2)."""
    from workbench.backends.cuda.conv import Geometry
    from workbench.backends.cuda.imma import configs
    from workbench.backends.cuda.quantized import space_to_depth

    if fold == 2 and (stride != 2 or dilation != 1 or -(-c // 4) * 4 % 16 == 0):
        pytest.skip("space-to-depth is for stride-2 undilated convolutions over fewer than 16 channels")

    rng = np.random.default_rng()
    n, h, k = 3, 23, 64
    conv = dict(CONV_ATTRS, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4,
                dilations=[dilation, dilation], group=1)
    attrs = _attrs(k, rng, "Relu", **conv)
    attrs.update(y_scale=float(np.float32(0.5)), y_zero_point=0, y_dtype="int8", y_quantized=1)
    x = rng.integers(-128, 128, (n, c, h, h)).astype(np.int8) if x_dtype == "int8" else \
        rng.standard_normal((n, c, h, h)).astype(x_dtype)
    w = rng.integers(-127, 128, (k, c, kernel, kernel)).astype(np.int8)
    b = rng.integers(-5000, 5000, k).astype(np.int32)
    out = (h + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    r = _residual(rng, residual, (n, k, out, out), attrs)
    kp = -(-(kernel * kernel * -(-c // 4) * 4) // 16) * 16
    if fold == 2:
        g = Geometry(n, c, h, h, k, c, kernel, kernel, 1, (2, 2), (1, 1), (pad, pad), (pad, pad), out, out)
        folded = space_to_depth(g, -(-c // 4) * 4)
        kp = folded["r"] * folded["s"] * folded["c"]
    found = configs(k, kp, "int8", residual, _runs(mma))
    bm, bn, stages = found[config % len(found)]
    want = qlinear_conv_fused(x if x_dtype == "int8" else x.astype(np.float32), w, b, _as_read(r), **attrs)
    got = run_tactic("int8-implicit", "QLinearConvFused", [x, w, b, r], attrs, "int8", const=(1, 2),
                     params={"tile": [bm, bn], "stages": stages, "fold": fold, "mma": mma}, domain="workbench",
                     out_dtype="int8",
                     channels_last=(0, 3) if x_dtype == "int8" else ())[0]
    _within_a_step(got, want)
