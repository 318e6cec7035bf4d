"""Activation kernels against onnx.reference, over attribute combinations and dtypes."""
import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference

CASES = [
    ("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("HardSwish", {}), ("Softplus", {}), ("Softsign", {}),
    ("Mish", {}), ("LeakyRelu", {}), ("LeakyRelu", {"alpha": 0.3}), ("HardSigmoid", {}),
    ("HardSigmoid", {"alpha": 0.4, "beta": 0.3}), ("Elu", {}), ("Elu", {"alpha": 0.5}), ("Selu", {}),
    ("Selu", {"alpha": 2.0, "gamma": 3.0}), ("Celu", {}), ("Celu", {"alpha": 2.5}),
    ("ThresholdedRelu", {}), ("ThresholdedRelu", {"alpha": 0.5}), ("Shrink", {}),
    ("Shrink", {"bias": 1.5, "lambd": 1.0}), ("Swish", {}), ("Swish", {"alpha": 0.7}),
    ("Gelu", {}), ("Gelu", {"approximate": "tanh"}),
]
TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-6, atol=1e-7),
             "float16": dict(rtol=3e-3, atol=3e-3)}
OPSET = {"Swish": 24}  # Swish arrived in opset 24


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("op,attrs", CASES, ids=[f"{o}{a or ''}" for o, a in CASES])
def test_activation_matches_reference(op, attrs, dtype):
    x = rand(3, 4, 5, dtype=dtype, low=-4, high=4)
    check(op, [x], attrs, opset=OPSET.get(op, 23), **TOLERANCE[dtype])


@pytest.mark.parametrize("op,attrs", CASES, ids=[f"{o}{a or ''}" for o, a in CASES])
def test_bfloat16_activation_is_float32_rounded_once(op, attrs):
    x = rand(4, 6, low=-4, high=4).astype(ml_dtypes.bfloat16)
    (got,) = ours(op, [x], attrs)
    (want,) = ours(op, [x.astype(np.float32)], attrs)
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got, want.astype(ml_dtypes.bfloat16))


@pytest.mark.parametrize("op,attrs", CASES, ids=[f"{o}{a or ''}" for o, a in CASES])
def test_scalar_input_gives_an_array(op, attrs):
    (out,) = ours(op, [np.array(-0.5, dtype=np.float32)], attrs)
    assert isinstance(out, np.ndarray) and out.shape == ()


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_relu_of_integers(dtype):
    check("Relu", [rand(5, 5, dtype=dtype, low=-50, high=50)])


def test_sigmoid_saturates_without_overflow_warnings():
    x = np.array([-1000.0, -80.0, 0.0, 80.0, 1000.0], dtype=np.float32)
    with np.errstate(all="raise"):
        (out,) = ours("Sigmoid", [x])
    np.testing.assert_allclose(out, [0, 1.8e-35, 0.5, 1, 1], rtol=1e-2, atol=0)


@pytest.mark.parametrize("slope_shape", [(5,), (1, 5), (4, 1), (1,), (3, 4, 5)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_prelu_broadcasts_slope(slope_shape, dtype):
    check("PRelu", [rand(3, 4, 5, dtype=dtype), rand(*slope_shape, dtype=dtype)], rtol=2e-3)


BOUNDS = [(-0.5, 0.7), (None, 0.3), (-0.2, None), (None, None), (1.0, -1.0)]


@pytest.mark.parametrize("low,high", BOUNDS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "int8", "int64"])
def test_clip_bounds_as_inputs(low, high, dtype):
    scale = 10 if dtype.startswith("int") else 1

    def bound(v):
        return None if v is None else np.array(v * scale, dtype=dtype)

    check("Clip", [rand(4, 5, dtype=dtype, low=-2 * scale, high=2 * scale), bound(low), bound(high)])


@pytest.mark.parametrize("low,high", BOUNDS[:4])
def test_clip_bounds_as_opset6_attributes(low, high):
    attrs = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    x = rand(4, 5)
    (want,) = reference("Clip", [x], attrs, opset=6)
    (got,) = ours("Clip", [x], attrs)
    np.testing.assert_array_equal(got, want)


def test_clip_without_bounds_does_not_alias_its_input():
    x = rand(3)
    (out,) = ours("Clip", [x])
    assert out is not x


def test_shrink_of_integers():
    check("Shrink", [rand(20, dtype="int32", low=-5, high=5)], {"bias": 1.0, "lambd": 1.5})


def test_gelu_rejects_unknown_approximation():
    from workbench.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="approximate"):
        ours("Gelu", [rand(3)], {"approximate": "fast"})


@pytest.mark.parametrize("alpha", [1.0, 1.702])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_swiglu(alpha, dtype):
    tol = 2e-3 if dtype == "float16" else 1e-6
    check("SwiGLU", [rand(3, 8, dtype=dtype, low=-6, high=6), rand(3, 8, dtype=dtype)], {"alpha": alpha},
          opset=28, rtol=tol, atol=tol)
