"""Elementwise math kernels against onnx.reference: unary functions, arithmetic, variadic ops, Cast."""
import math

import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference
from workbench.backends.cpu.kernels.elementwise import erf

# inputs inside each function's domain, away from its poles
DOMAINS = {
    "Abs": (-3, 3), "Neg": (-3, 3), "Floor": (-3, 3), "Ceil": (-3, 3), "Round": (-3, 3),
    "Sign": (-3, 3), "Exp": (-3, 3), "Log": (0.1, 5), "Sqrt": (0.1, 5), "Reciprocal": (0.5, 3),
    "Erf": (-4, 4), "Sin": (-3, 3), "Cos": (-3, 3), "Tan": (-1.2, 1.2), "Asin": (-0.9, 0.9),
    "Acos": (-0.9, 0.9), "Atan": (-3, 3), "Sinh": (-3, 3), "Cosh": (-3, 3), "Asinh": (-3, 3),
    "Acosh": (1.1, 5), "Atanh": (-0.9, 0.9),
}
TOLERANCE = {"float16": dict(rtol=2e-3, atol=2e-3), "float32": dict(rtol=1e-5, atol=1e-6),
             "float64": dict(rtol=1e-12, atol=1e-12)}


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("op", sorted(DOMAINS))
def test_unary_math_matches_reference(op, dtype):
    low, high = DOMAINS[op]
    tolerance = TOLERANCE["float32" if op == "Erf" else dtype]  # the reference's erf is float32
    check(op, [rand(3, 4, 5, dtype=dtype, low=low, high=high)], **tolerance)


@pytest.mark.parametrize("op", ["Abs", "Neg", "Sign"])
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_unary_integer_ops_keep_integers(op, dtype):
    check(op, [rand(4, 6, dtype=dtype, low=-50, high=50)])


def test_round_is_half_to_even():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999], dtype=np.float32)
    check("Round", [x])
    np.testing.assert_array_equal(ours("Round", [x])[0], [-2, -2, -0, 0, 2, 2, 2])


def test_erf_is_double_precise_over_all_ranges():
    x = np.concatenate([np.linspace(-30, 30, 2001), [0.0, 0.46875, -0.46875, 4.0, -4.0, 1e-300]])
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), want, rtol=1e-14, atol=1e-16)


def test_erf_is_single_precise_for_float32():
    x = np.linspace(-6, 6, 20001).astype(np.float32)
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    got = erf(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=5e-7, atol=2e-7)
    assert np.abs(got).max() <= 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_erf_special_values(dtype):
    out = erf(np.array([np.inf, -np.inf, np.nan, 0.0], dtype=dtype))
    assert out[0] == 1 and out[1] == -1 and np.isnan(out[2]) and out[3] == 0 and out.dtype == dtype


def test_out_of_domain_gives_nan_without_warnings():
    with np.errstate(all="raise"):  # a warning would raise here
        (out,) = ours("Log", [np.array([-1.0, 0.0, 1.0], dtype=np.float32)])
    assert np.isnan(out[0]) and out[1] == -np.inf and out[2] == 0


# ---- binary arithmetic -----------------------------------------------------------------------
SHAPES = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (2, 2))]


@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int8", "uint8", "int32", "int64"])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_arithmetic_matches_reference(op, dtype, a_shape, b_shape):
    a = rand(*a_shape, dtype=dtype, low=1 if dtype.startswith("u") else -20, high=20)
    b = rand(*b_shape, dtype=dtype, low=1, high=7)
    if dtype.startswith("int"):
        b = b * np.where(rand(*b_shape) > 0, 1, -1).astype(dtype)  # divisors of both signs
    check(op, [a, b], **TOLERANCE.get(dtype, {}))


def test_integer_division_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 6, -6], dtype=np.int64)
    b = np.array([2, 2, -2, -2, 3, 3], dtype=np.int64)
    np.testing.assert_array_equal(ours("Div", [a, b])[0], [3, -3, -3, 3, 2, -2])


def test_bfloat16_arithmetic_rounds_once_from_float32():
    a, b = rand(5, 7, dtype=ml_dtypes.bfloat16), rand(5, 7, dtype=ml_dtypes.bfloat16)
    (out,) = ours("Mul", [a, b])
    assert out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out, (a.astype(np.float32) * b.astype(np.float32)).astype(ml_dtypes.bfloat16))


@pytest.mark.parametrize("x_dtype,y_dtype", [("float32", "float32"), ("float32", "int64"), ("int64", "float32"),
                                             ("int32", "int32"), ("float16", "float32"), ("float64", "int32")])
def test_pow_mixed_dtypes(x_dtype, y_dtype):
    x = rand(3, 4, dtype=x_dtype, low=1, high=4)
    y = rand(3, 4, dtype=y_dtype, low=0, high=3)
    check("Pow", [x, y], rtol=2e-3 if "float16" in (x_dtype, y_dtype) else 1e-5)


@pytest.mark.parametrize("exponent", [np.array(3.0, np.float32), np.array([2.0], np.float32),
                                      np.array(3, np.int64), np.array([[[3.0]]], np.float32),
                                      np.array(2.5, np.float32)], ids=repr)
def test_pow_by_scalar_exponents(exponent):
    x = np.concatenate([rand(20, low=-3, high=3), [np.inf, -np.inf, np.nan, -0.0]]).astype(np.float32)
    check("Pow", [x.reshape(4, 6), exponent])


def test_pow_negative_integer_exponent_truncates():
    x = np.array([2, -1, 1, 3], dtype=np.int32)
    y = np.array([-1, -3, -2, 2], dtype=np.int32)
    np.testing.assert_array_equal(ours("Pow", [x, y])[0], [0, -1, 1, 9])


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", ["int32", "int64", "int8", "float32", "float16"])
def test_mod_signs(dtype, fmod):
    if dtype.startswith("float") and not fmod:
        pytest.skip("ONNX requires fmod=1 for floats")
    a = rand(4, 5, dtype=dtype, low=-30, high=30)
    b = rand(5, dtype=dtype, low=2, high=6) * np.array([1, -1, 1, -1, 1], dtype=dtype)
    check("Mod", [a, b], {"fmod": fmod}, rtol=1e-3 if dtype == "float16" else 1e-5)


# ---- variadic ops ----------------------------------------------------------------------------
@pytest.mark.parametrize("shapes", [[(3, 4)], [(3, 4), (4,)], [(2, 3, 4), (3, 1), (1,)], [(3, 1), (2, 1, 4)]])
@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int32"])
def test_variadic_ops_broadcast_all_inputs(op, shapes, dtype):
    if op == "Mean" and dtype == "int32":
        pytest.skip("Mean is defined for floats only")
    if op == "Mean" and shapes[0] == (3, 1):
        pytest.skip("onnx.reference's Mean adds in place into the first input, which must be the largest")
    # the reference sums float16 in float16: its cancellation errors reach ~1e-2
    check(op, [rand(*s, dtype=dtype, low=-9, high=9) for s in shapes], rtol=2e-3, atol=1e-2)


def test_single_input_variadic_returns_a_copy():
    x = rand(3)
    (out,) = ours("Sum", [x])
    assert out is not x and np.shares_memory(out, x) is False


# ---- Cast ------------------------------------------------------------------------------------
DTYPE_CODES = {"float32": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float16": 10,
               "float64": 11, "bfloat16": 16, "float8_e4m3fn": 17, "float8_e4m3fnuz": 18, "float8_e5m2": 19,
               "float8_e5m2fnuz": 20, "uint4": 21, "int4": 22, "float4_e2m1fn": 23}


def check_cast(op, inputs, attrs=None, opset=23):
    """Exact comparison with the reference, NaN == NaN (oracle.check compares ml_dtypes exactly, NaN != NaN)."""
    (want,), (got,) = reference(op, inputs, attrs, opset=opset), ours(op, inputs, attrs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


def _special_floats(dtype):
    """Values covering rounding, overflow of small formats, inf and NaN."""
    x = np.concatenate([rand(40, low=-600, high=600), rand(40, low=-3, high=3),
                        [0.0, -0.0, 1e6, -1e6, np.inf, -np.inf, np.nan, 448.0, 464.0, 57344.0]])
    with np.errstate(over="ignore"):  # 1e6 becomes inf in float16, on purpose
        return x.astype(dtype)


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("to", ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz"])
@pytest.mark.parametrize("source", ["float32", "float16", "float64"])
def test_cast_to_float8(source, to, saturate):
    x = _special_floats(source)
    check_cast("Cast", [x], {"to": DTYPE_CODES[to], "saturate": saturate})


@pytest.mark.parametrize("to", ["float32", "float64", "float16", "bfloat16", "int32", "int64", "int8", "uint8",
                                "bool", "float4_e2m1fn"])
@pytest.mark.parametrize("source", ["float32", "float16", "bfloat16", "float8_e4m3fn", "int64"])
def test_cast_between_common_dtypes(source, to):
    x = rand(6, 7, low=-100, high=100).astype(source)
    check_cast("Cast", [x], {"to": DTYPE_CODES[to]})


@pytest.mark.parametrize("to", ["int4", "uint4"])
def test_cast_to_4bit_integers(to):
    x = rand(20, low=0 if to == "uint4" else -8, high=7).astype(np.float32)
    check_cast("Cast", [x], {"to": DTYPE_CODES[to]})


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [1, 0])
def test_cast_to_e8m0_rounding(round_mode, saturate):
    x = np.concatenate([rand(50, low=1e-3, high=1e3), [1.5, 3.0, 1.0, 2.0**-130, 3e38, np.inf, np.nan]])
    check_cast("Cast", [x.astype(np.float32)], {"to": 24, "saturate": saturate, "round_mode": round_mode},
               opset=25)


@pytest.mark.parametrize("target", ["float16", "bfloat16", "float8_e5m2", "int64"])
def test_cast_like_takes_the_target_dtype(target):
    x = rand(3, 5, low=-50, high=50)
    check_cast("CastLike", [x, np.zeros(1, dtype=target)])


def test_cast_rejects_strings_and_unknown_codes():
    from workbench.errors import ShapeError, UnsupportedError

    with pytest.raises(UnsupportedError, match="string"):
        ours("Cast", [rand(2)], {"to": 8})
    with pytest.raises(ShapeError, match="not an ONNX tensor data type"):
        ours("Cast", [rand(2)], {"to": 99})


@pytest.mark.parametrize("op", sorted(DOMAINS) + ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean"])
def test_scalar_inputs_give_arrays(op):
    """ufuncs turn 0-d arrays into numpy scalars; kernels must still return arrays."""
    x = np.array(0.5, dtype=np.float32)
    (out,) = ours(op, [x] if op in DOMAINS else [x, x])
    assert isinstance(out, np.ndarray) and out.shape == ()


@pytest.mark.parametrize("src,to", [("float32", 6), ("int32", 1), ("float64", 7), ("uint16", 5), ("int8", 2),
                                    ("bool", 2), ("float16", 16), ("int64", 11)])
@pytest.mark.parametrize("shape", [(), (3, 4)])
def test_bit_cast_reinterprets_bytes(src, to, shape):
    x = (rand(*shape, low=-100, high=100) if src != "bool" else rand(*shape) > 0).astype(src)
    check("BitCast", [x], {"to": to}, opset=26)

