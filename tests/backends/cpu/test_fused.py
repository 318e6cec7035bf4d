"""The optimizer's fused ops against the ONNX ops they stand for, composed in onnx.reference."""
import numpy as np
import pytest

from tests.oracle import ours, rand, reference
from workbench.backends.cpu.registry import kernel_for
from workbench.ir.opdefs.fused import ACTIVATIONS
from workbench.ir.ops import spec_for

PARAMS = {"LeakyRelu": (0.2, None), "Elu": (0.7, None), "Celu": (1.3, None), "ThresholdedRelu": (0.4, None),
          "HardSigmoid": (0.3, 0.4), "Selu": (1.5, 1.1), "Clip": (-0.5, 0.6)}


def _needs(*ops):
    missing = [op for op in ops if kernel_for(op) is None or spec_for(op) is None]
    if missing:
        pytest.skip(f"no spec or CPU kernel yet for {missing}")


def _expected_activation(y, kind):
    """y through the ONNX op of activation `kind`, as onnx.reference computes it."""
    if kind is None:
        return y
    act = ACTIVATIONS[kind]
    alpha, beta = PARAMS.get(kind, (None, None))
    if act.params_are_inputs:
        return reference(act.op, [y, np.float32(alpha), np.float32(beta)])[0]
    attrs = {**act.fixed, **{p: v for p, v in zip(act.params, (alpha, beta)) if v is not None}}
    return reference(act.op, [y], attrs)[0]


def _ours(op, inputs, attrs, kind):
    from tests.oracle import ours

    alpha, beta = PARAMS.get(kind, (None, None))
    act = {"activation": kind, "activation_alpha": alpha, "activation_beta": beta}
    return ours(op, inputs, {**attrs, **act}, domain="workbench")[0]


@pytest.mark.parametrize("kind", [None, *ACTIVATIONS])
@pytest.mark.parametrize("residual", [False, True])
def test_fused_conv(kind, residual):
    _needs("Conv", "Add", ACTIVATIONS[kind].op if kind else "Add")
    x, w, b = rand(2, 4, 6, 6, seed=1), rand(6, 2, 3, 3, seed=2), rand(6, seed=3)
    attrs = {"pads": [1, 0, 1, 0], "strides": [1, 2], "group": 2}
    want = reference("Conv", [x, w, b], attrs)[0]
    inputs = [x, w, b]
    if residual:
        r = rand(*want.shape, seed=4)
        want, inputs = reference("Add", [want, r])[0], inputs + [r]
    got = _ours("FusedConv", inputs, attrs, kind)
    np.testing.assert_allclose(got, _expected_activation(want, kind), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", [None, "Relu", "Gelu", "Clip"])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_fused_gemm(kind, trans_b):
    _needs("Gemm", ACTIVATIONS[kind].op if kind else "Gemm")
    a, b, c = rand(3, 5, seed=1), rand(*((4, 5) if trans_b else (5, 4)), seed=2), rand(4, seed=3)
    attrs = {"alpha": 0.5, "beta": 2.0, "transB": trans_b}
    want = _expected_activation(reference("Gemm", [a, b, c], attrs)[0], kind)
    np.testing.assert_allclose(_ours("FusedGemm", [a, b, c], attrs, kind), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", [None, "GeluTanh", "Sigmoid"])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_matmul(kind, bias):
    _needs("MatMul", "Add", ACTIVATIONS[kind].op if kind else "MatMul")
    a, b, c = rand(2, 3, 5, seed=1), rand(5, 4, seed=2), rand(4, seed=3)
    want = reference("MatMul", [a, b])[0]
    want = reference("Add", [want, c])[0] if bias else want
    got = _ours("FusedMatMul", [a, b, c] if bias else [a, b], {}, kind)
    np.testing.assert_allclose(got, _expected_activation(want, kind), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, alpha, beta", [("Relu", None, None), ("Clip", -0.5, 0.6), ("Clip", None, 0.3),
                                               ("Clip", 0.2, None), ("Clip", 0.6, -0.5)])
@pytest.mark.parametrize("residual_shape", [None, (2, 6, 6, 2), (6, 1, 1), (3, 2, 6, 6, 2)])
def test_in_place_epilogue_equals_the_onnx_ops(kind, alpha, beta, residual_shape):
    """ReLU and Clip (either bound, or min > max) and a residual that broadcasts either way."""
    x, w, b = rand(2, 4, 6, 6, seed=1), rand(6, 4, 3, 3, seed=2), rand(6, seed=3)
    attrs = {"pads": [1, 0, 1, 0], "strides": [1, 2]}
    want = reference("Conv", [x, w, b], attrs)[0]
    inputs = [x, w, b]
    if residual_shape is not None:
        r = rand(*residual_shape, seed=4)
        want, inputs = reference("Add", [want, r])[0], inputs + [r]
    bounds = [None if v is None else np.float32(v) for v in (alpha, beta)]
    want = np.maximum(want, 0) if kind == "Relu" else reference("Clip", [want, *bounds])[0]
    act = {"activation": kind, "activation_alpha": alpha, "activation_beta": beta}
    got = ours("FusedConv", inputs, {**attrs, **act}, domain="workbench")[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_fused_conv_in_float16_rounds_like_the_onnx_ops():
    x, w, b, r = (rand(*s, seed=i).astype(np.float16) for i, s in enumerate([(1, 4, 5, 5), (3, 4, 3, 3), (3,),
                                                                             (1, 3, 5, 5)]))
    conv = ours("Conv", [x, w, b], {"pads": [1] * 4})[0]
    want = ours("Relu", [ours("Add", [conv, r])[0]])[0]
    got = ours("FusedConv", [x, w, b, r], {"pads": [1] * 4, "activation": "Relu"}, domain="workbench")[0]
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want)
