"""Every GPU tactic against a float64 NumPy reference, at every precision it declares.

Tolerances (relative L2): fp32 1e-5, tf32 1e-3, fp16/bf16 1e-2 (METHOD.md of the device tool).
Fresh random inputs for every case; the memory pool is filled with NaN before each run, so an
output element the kernel never writes fails the test.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.gpu.helpers import (TOLERANCE, NotApplicable, activation, conv2d, layernorm, rel_l2, rounded,
                               run_tactic, softmax)

# (the pooling tactics are covered end to end by the zoo-model parity tests in test_runtime.py)

pytestmark = pytest.mark.gpu
PRECISIONS = ["fp32", "tf32", "fp16", "bf16"]


def rng():
    return np.random.default_rng()


def _check(tactic, op, inputs, attrs, precision, want, domain="", const=(1, 2), params=None):
    try:
        got = run_tactic(tactic, op, inputs, attrs, precision, params=params, const=const, domain=domain)[0]
    except NotApplicable as e:
        pytest.fail(f"{tactic} does not apply: {e}")
    except Exception as e:
        # The build drops such candidates and falls back; here they are skips, not failures: cuDNN offers
        # no engine for some fused fp32 graphs once TF32 engines are excluded, and a CPU kernel may use
        # NumPy calls that CuPy does not take.
        if "NotSupported" in type(e).__name__ or "Implicit conversion" in str(e):
            pytest.skip(f"{tactic}: {type(e).__name__}: {e}")
        raise
    err = rel_l2(got, want)
    assert err <= TOLERANCE[precision], f"{tactic} {op} {precision}: relative L2 error {err:.2e}"


# ------------------------------------------------------------------------------- convolution
CONV_CASES = {
    # name: (x shape, w shape, stride, pads, dilation, group, bias, residual, activation)
    "3x3": ((2, 16, 12, 12), (32, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, False, None),
    "stride2-residual-relu": ((2, 16, 12, 12), (32, 16, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, True, True, "Relu"),
    "grouped-leaky": ((2, 16, 10, 10), (16, 4, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4, True, False, "LeakyRelu"),
    "depthwise-clip": ((2, 32, 9, 9), (32, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 32, True, False, "Clip"),
    "stem-7x7": ((2, 3, 32, 32), (16, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1, False, False, "Relu"),
    "1x1-dilated-asym": ((1, 8, 11, 13), (8, 8, 3, 1), (1, 1), (2, 0, 1, 0), (2, 1), 1, True, False, "Sigmoid"),
}


def _conv_case(name):
    xs, ws, stride, pads, dil, group, bias, residual, act = CONV_CASES[name]
    g = rng()
    x = g.standard_normal(xs).astype(np.float32)
    w = (g.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
    b = g.standard_normal(ws[0]).astype(np.float32) if bias else None
    out_shape = conv2d(np.zeros(xs), np.zeros(ws), None, stride, pads, dil, group).shape
    r = g.standard_normal(out_shape).astype(np.float32) if residual else None
    attrs = {"auto_pad": "NOTSET", "dilations": list(dil), "group": group, "kernel_shape": list(ws[2:]),
             "pads": list(pads), "strides": list(stride)}
    fused = residual or act is not None
    alpha, beta = (0.0, 6.0) if act == "Clip" else (0.1 if act == "LeakyRelu" else None, None)
    if fused:
        attrs.update(activation=act, activation_alpha=alpha, activation_beta=beta)
    return x, w, b, r, attrs, fused, (stride, pads, dil, group, act, alpha, beta)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("tactic,params", [("cudnn", {"plan": 0, "fused": True}), ("cudnn", {"plan": 0, "fused": False}),
                                           ("taps", {})])
def test_conv(tactic, params, case, precision):
    x, w, b, r, attrs, fused, (stride, pads, dil, group, act, alpha, beta) = _conv_case(case)
    if tactic == "cudnn" and not params["fused"] and not fused and b is None:
        pytest.skip("nothing to leave unfused")
    ref = conv2d(rounded(x, precision), rounded(w, precision), rounded(b, precision) if b is not None else None,
                 stride, pads, dil, group)
    if r is not None:
        ref = ref + rounded(r, precision)
    ref = activation(act, ref, alpha, beta)
    inputs = [x, w, b] + ([r] if fused else [])
    op, domain = ("FusedConv", "workbench") if fused else ("Conv", "")
    _check(tactic, op, inputs, attrs, precision, ref, domain=domain, params=params)


# ------------------------------------------------------------------------------- matrix products
def _gemm_attrs(act=None, trans_b=1):
    return {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": trans_b, "activation": act,
            "activation_alpha": None, "activation_beta": None}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("tactic", ["cublas", "nvmath"])
@pytest.mark.parametrize("case", ["gemm-bias", "gemm-relu", "matmul-3d-gelu-tanh", "matmul-3d", "gemm-notrans"])
def test_gemm(tactic, case, precision):
    if tactic == "nvmath" and precision == "bf16":
        pytest.skip("nvmath tactic declares fp32/tf32/fp16")
    g = rng()
    m, k, n = 48, 64, 40
    if case.startswith("gemm"):
        trans_b = 0 if case == "gemm-notrans" else 1
        a = g.standard_normal((m, k)).astype(np.float32)
        wt = (g.standard_normal((n, k)) / 8).astype(np.float32)
        w = wt if trans_b else np.ascontiguousarray(wt.T)
        c = g.standard_normal(n).astype(np.float32)
        act = "Relu" if case == "gemm-relu" else None
        op, domain = ("FusedGemm", "workbench") if act else ("Gemm", "")
        attrs = _gemm_attrs(act, trans_b) if act else {k_: v for k_, v in _gemm_attrs(None, trans_b).items()
                                                        if not k_.startswith("activation")}
        ref = activation(act, rounded(a, precision) @ rounded(wt, precision).T + rounded(c, precision))
        _check(tactic, op, [a, w, c], attrs, precision, ref, domain=domain)
        return
    a = g.standard_normal((3, 7, k)).astype(np.float32)
    w = (g.standard_normal((k, n)) / 8).astype(np.float32)
    if case == "matmul-3d":
        ref = rounded(a, precision) @ rounded(w, precision)
        _check(tactic, "MatMul", [a, w], {}, precision, ref, const=(1,))
        return
    bias = g.standard_normal(n).astype(np.float32)
    ref = activation("GeluTanh", rounded(a, precision) @ rounded(w, precision) + rounded(bias, precision))
    attrs = {"activation": "GeluTanh", "activation_alpha": None, "activation_beta": None}
    _check(tactic, "FusedMatMul", [a, w, bias], attrs, precision, ref, domain="workbench", const=(1, 2))


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16"])
@pytest.mark.parametrize("tactic", ["cublas", "nvmath"])
def test_batched_matmul_of_two_activations(tactic, precision):
    g = rng()
    a = g.standard_normal((2, 4, 16, 8)).astype(np.float32)
    b = g.standard_normal((2, 4, 8, 16)).astype(np.float32).transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)
    ref = rounded(a, precision) @ rounded(np.ascontiguousarray(b), precision)
    _check(tactic, "MatMul", [a, b], {}, precision, ref, const=())


@pytest.mark.parametrize("tactic,params", [("cublas", None), ("nvmath", None),
                                           ("nvmath", {"algo": 0, "epilogue": "kernel"})])
def test_fused_matmul_with_an_activation_cublaslt_lacks(tactic, params):
    g = rng()
    a = g.standard_normal((2, 5, 32)).astype(np.float32)
    w = (g.standard_normal((32, 24)) / 6).astype(np.float32)
    bias = g.standard_normal(24).astype(np.float32)
    attrs = {"activation": "Gelu", "activation_alpha": None, "activation_beta": None}
    ref = activation("Gelu", rounded(a, "fp16") @ rounded(w, "fp16") + rounded(bias, "fp16"))
    _check(tactic, "FusedMatMul", [a, w, bias], attrs, "fp16", ref, domain="workbench", const=(1, 2), params=params)


@pytest.mark.parametrize("axis", [0, 1])
def test_gather_on_the_device(axis):
    g = rng()
    data = g.standard_normal((50, 12)).astype(np.float32)
    idx = g.integers(-12, 12, (3, 4)).astype(np.int64)
    ref = np.take(data, np.where(idx < 0, idx + data.shape[axis], idx), axis=axis).astype(np.float64)
    _check("take", "Gather", [data, idx], {"axis": axis}, "fp32", ref, const=(0,))


def test_gather_with_computed_host_indices():
    """BERT's token types: zeros made on the host by shape arithmetic, uploaded once by the kernel."""
    import cupy as cp

    from workbench.backends.cuda import device, tactics
    from workbench.backends.cuda.site import make_site
    from workbench.ir.network import Layer

    data = rng().standard_normal((2, 16)).astype(np.float32)
    idx = np.zeros((3, 5), np.int64)  # a host array that is no weight
    tactics.load_all()
    dev = device.Device(device.Shared({}))
    with dev.active():
        args = [cp.asarray(data), idx]
        site = make_site(Layer("g", "Gather", ["d", "i"], ["y"], {"axis": 0}), {"axis": 0}, args, "fp32",
                         ["float32"], {"d"}, 21)
        assert tactics.TACTICS["take"].applies(site) is None
        out = tactics.TACTICS["take"].prepare(site, {}, dev)(args)[0]
        np.testing.assert_array_equal(cp.asnumpy(out), np.take(data, idx, axis=0))


# ------------------------------------------------------------------------------- pointwise
UNARY = ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "Gelu", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus",
         "Softsign", "Erf", "Exp", "Neg", "Abs", "Celu", "ThresholdedRelu", "Mish"]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("op", UNARY)
def test_unary(op, precision):
    x = rng().standard_normal((5, 33, 7)).astype(np.float32)
    attrs = {"LeakyRelu": {"alpha": 0.2}, "Elu": {"alpha": 0.7}, "HardSigmoid": {"alpha": 0.3, "beta": 0.4},
             "Selu": {"alpha": 1.5, "gamma": 1.1}, "Celu": {"alpha": 1.3}, "ThresholdedRelu": {"alpha": 0.5},
             "Gelu": {"approximate": "none"}}.get(op, {})
    a = attrs.get("alpha")
    b = attrs.get("beta", attrs.get("gamma"))
    ref = activation(op, rounded(x, precision), a, b)
    _check("nvrtc", op, [x], attrs, precision, ref, const=())


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"])
def test_binary_broadcast(op, precision):
    g = rng()
    x = g.standard_normal((4, 6, 5)).astype(np.float32)
    y = g.standard_normal((6, 1)).astype(np.float32)
    if op == "Pow":
        x, y = np.abs(x) + 0.5, (y / 2).astype(np.float32)
    if op == "Div":
        y = np.sign(y) * (np.abs(y) + 0.5)
    fx, fy = rounded(x, precision), rounded(y, precision)
    ref = {"Add": fx + fy, "Sub": fx - fy, "Mul": fx * fy, "Div": fx / fy, "Pow": fx ** fy,
           "Max": np.maximum(fx, fy), "Min": np.minimum(fx, fy), "PRelu": np.where(fx < 0, fx * fy, fx)}[op]
    _check("nvrtc", op, [x, y], {}, precision, ref, const=())


def test_clip_with_scalar_bounds():
    x = rng().standard_normal((3, 50)).astype(np.float32)
    lo, hi = np.array(-0.5, np.float32), np.array([0.7], np.float32)
    _check("nvrtc", "Clip", [x, lo, hi], {}, "fp32", np.clip(x, -0.5, 0.7).astype(np.float64), const=(1, 2))


# ------------------------------------------------------------------------------- rows
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("cols", [7, 128, 768, 3000])
def test_softmax(precision, cols):
    x = (rng().standard_normal((6, 5, cols)) * 3).astype(np.float32)
    _check("rows", "Softmax", [x], {"axis": -1}, precision, softmax(rounded(x, precision)), const=())


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("bias", [True, False])
def test_layernorm(precision, bias):
    g = rng()
    x = (g.standard_normal((4, 9, 768)) * 2 + 1).astype(np.float32)
    w = g.standard_normal(768).astype(np.float32)
    b = g.standard_normal(768).astype(np.float32) if bias else None
    ref = layernorm(rounded(x, precision), rounded(w, precision), rounded(b, precision) if bias else None, 1e-5)
    attrs = {"axis": -1, "epsilon": 1e-5, "stash_type": 1}
    _check("rows-ln", "LayerNormalization", [x, w, b], attrs, precision, ref, const=(1, 2))


@pytest.mark.parametrize("cols", [8, 768, 1000, 2048])
@pytest.mark.parametrize("residual,bias", [(True, True), (False, True), (False, False)])
def test_layernorm_warp_form(cols, residual, bias):
    """A warp a row, held in registers: rows that fill 1 to 8 vectors a lane, a partial last chunk (1000),
    fp16 activations as a fp16 engine hands them, with and without the fused residual."""
    g = rng()
    x = (g.standard_normal((3, 7, cols)) * 2 + 1).astype(np.float16)
    r = g.standard_normal((3, 7, cols)).astype(np.float16) if residual else None
    w, b = g.standard_normal(cols).astype(np.float32), g.standard_normal(cols).astype(np.float32) if bias else None
    ref = layernorm(x.astype(np.float64) + (r.astype(np.float64) if residual else 0), rounded(w, "fp16"),
                    rounded(b, "fp16") if bias else None, 1e-5)
    attrs = {"axis": -1, "epsilon": 1e-5, "stash_type": 1}
    op, domain = ("FusedLayerNorm", "workbench") if residual else ("LayerNormalization", "")
    _check("rows-ln", op, [x, w, b] + ([r] if residual else []), attrs, "fp16", ref, domain=domain, const=(1, 2),
           params={"form": "warp"})


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("residual_dtype", ["float32", "float16"])
def test_fused_layernorm_adds_the_residual(precision, residual_dtype):
    g = rng()
    x = (g.standard_normal((4, 9, 768)) * 2 + 1).astype(np.float32)
    r = g.standard_normal((4, 9, 768)).astype(residual_dtype)
    w, b = g.standard_normal(768).astype(np.float32), g.standard_normal(768).astype(np.float32)
    ref = layernorm(rounded(x, precision) + rounded(r, precision), rounded(w, precision), rounded(b, precision), 1e-5)
    attrs = {"axis": -1, "epsilon": 1e-5, "stash_type": 1}
    _check("rows-ln", "FusedLayerNorm", [x, w, b, r], attrs, precision, ref, domain="workbench", const=(1, 2))


# ------------------------------------------------------------------------------- fallbacks
@pytest.mark.parametrize("tactic", ["generic", "host"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_fallbacks_follow_the_cpu_kernels(tactic, precision):
    g = rng()
    x = g.standard_normal((3, 4, 5)).astype(np.float32)
    y = g.standard_normal((4, 5)).astype(np.float32)
    _check(tactic, "Add", [x, y], {}, precision, rounded(x, precision) + rounded(y, precision), const=())
    _check(tactic, "Relu", [x], {}, precision, np.maximum(rounded(x, precision), 0), const=())


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("channels_last,n,c", [(True, 8, 2048), (False, 8, 2048), (True, 2, 16)])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_global_pools(op, channels_last, n, c, dtype):
    """The window kernel over a channels-last input with enough (image, channel) pairs, else a reduction."""
    x = np.random.default_rng().standard_normal((n, c, 7, 7)).astype(dtype)
    got = run_tactic("reduce", op, [x], {}, "fp16" if dtype == "float16" else "fp32", out_dtype=dtype,
                     channels_last=(0,) if channels_last else ())[0]
    x64 = x.astype(np.float64)
    want = x64.mean(axis=(2, 3), keepdims=True) if op == "GlobalAveragePool" else x64.max(axis=(2, 3), keepdims=True)
    assert got.shape == (n, c, 1, 1)
    tol = 2e-3 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
