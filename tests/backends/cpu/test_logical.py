"""Comparison, logic, bit, NaN/Inf and Where kernels against onnx.reference."""
import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand

SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (3,))]


def _ints_with_ties(shape, dtype):
    """Few distinct values, so that equal elements occur."""
    return rand(*shape, dtype="float32", low=0, high=4).astype(dtype)


@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "int64", "uint8", "bool"])
@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons(op, dtype, a_shape, b_shape):
    if dtype == "bool" and op != "Equal":
        pytest.skip("only Equal takes booleans")
    check(op, [_ints_with_ties(a_shape, dtype), _ints_with_ties(b_shape, dtype)])


def test_bfloat16_comparison():
    a = rand(10).astype(ml_dtypes.bfloat16)
    b = a[::-1].copy()
    np.testing.assert_array_equal(ours("Less", [a, b])[0], a.astype(np.float32) < b.astype(np.float32))


def test_equal_of_strings():
    a = np.array(["a", "bc", "d"], dtype=object)
    b = np.array(["a", "b", "d"], dtype=object)
    np.testing.assert_array_equal(ours("Equal", [a, b])[0], [True, False, True])


@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_boolean_logic(op, a_shape, b_shape):
    check(op, [rand(*a_shape) > 0, rand(*b_shape) > 0])


def test_not():
    check("Not", [rand(3, 4) > 0])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "uint64", "int64"])
@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise_binary(op, dtype):
    low = 0 if dtype.startswith("u") else -100
    check(op, [rand(4, 5, dtype=dtype, low=low, high=100), rand(5, dtype=dtype, low=low, high=100)])


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32", "uint64"])
def test_bitwise_not(dtype):
    check("BitwiseNot", [rand(4, 5, dtype=dtype, low=0, high=100)])


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_bit_shift(direction, dtype):
    x = rand(3, 4, dtype=dtype, low=1, high=200)
    check("BitShift", [x, rand(4, dtype=dtype, low=0, high=7)], {"direction": direction})


SPECIALS = np.array([1.0, -np.inf, np.inf, np.nan, 0.0, -2.5])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_is_nan(dtype):
    check("IsNaN", [SPECIALS.astype(dtype)])


@pytest.mark.parametrize("negative,positive", [(1, 1), (0, 1), (1, 0), (0, 0)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_is_inf_directions(dtype, negative, positive):
    check("IsInf", [SPECIALS.astype(dtype)], {"detect_negative": negative, "detect_positive": positive})


def test_is_inf_of_bfloat16():
    (out,) = ours("IsInf", [SPECIALS.astype(ml_dtypes.bfloat16)])
    np.testing.assert_array_equal(out, np.isinf(SPECIALS))


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (4,)), ((), (2, 3), (3,))])
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "float16"])
def test_where_broadcasts_all_three(shapes, dtype):
    cond, x_shape, y_shape = shapes
    x = rand(*x_shape, dtype="float32").astype(dtype)
    y = rand(*y_shape, dtype="float32").astype(dtype)
    check("Where", [rand(*cond) > 0, x, y])


def test_bit_shift_needs_a_direction():
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="direction"):
        ours("BitShift", [np.array([1], np.uint8), np.array([1], np.uint8)], {"direction": "UP"})


@pytest.mark.parametrize("op,inputs,attrs", [
    ("IsInf", [np.array(1.0)], {}), ("IsNaN", [np.array(1.0)], {}), ("Not", [np.array(True)], {}),
    ("And", [np.array(True)] * 2, {}), ("Less", [np.array(1.0)] * 2, {}),
    ("BitShift", [np.array(3, np.uint8)] * 2, {"direction": "LEFT"}), ("BitwiseNot", [np.array(3, np.uint8)], {}),
])
def test_scalar_inputs_give_arrays(op, inputs, attrs):
    (out,) = ours(op, inputs, attrs)
    assert isinstance(out, np.ndarray) and out.shape == ()
