"""INT8 tactics (QGemm, QLinearConvFused) against the CPU integer kernels: bit-exact where the recipe is."""
from __future__ import annotations

import numpy as np
import pytest

from tests.gpu.helpers import NotApplicable, run_tactic
from workbench.backends.cpu.kernels.quantized import qgemm, qlinear_conv_fused
from workbench.ir.opdefs.fused import ACTIVATION_ATTRS, CONV_ATTRS
from workbench.ir.opdefs.quantized import QUANT_ATTRS

pytestmark = pytest.mark.gpu


def _attrs(n, rng, act=None, x_dtype="int8", grid=False, **extra):
    a = dict(QUANT_ATTRS, **ACTIVATION_ATTRS)
    a.update(x_scale=float(np.float32(0.05)), x_dtype=x_dtype, x_zero_point=128 if x_dtype == "uint8" else 0,
             w_scale=[float(s) for s in rng.uniform(0.001, 0.01, n).astype(np.float32)], activation=act)
    if grid:
        a.update(y_scale=float(np.float32(0.07)), y_zero_point=3, y_dtype="int8")
    a.update(extra)
    return a


def _exact(tactic, op, inputs, attrs, want, exact=True):
    try:
        got = run_tactic(tactic, op, inputs, attrs, "int8", const=(1, 2), domain="workbench", out_dtype="float32")[0]
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
@pytest.mark.parametrize("x_half", [False, True])
def test_qgemm(x_dtype, act, grid, bias, x_half):
    rng = np.random.default_rng()
    m, k, n = 3 * 128, 768, 256
    x = (rng.standard_normal((3, 128, k)) * 2).astype(np.float16 if x_half else np.float32)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    b = rng.integers(-5000, 5000, n).astype(np.int32) if bias else None
    attrs = _attrs(n, rng, act, x_dtype, grid)
    want = qgemm(x.astype(np.float32), w, b, **attrs)
    _exact("int8-gemm", "QGemm", [x, w, b], attrs, want, exact=act != "Gelu")
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
