"""Shape rules of comparisons, logic, bit ops and Where, with symbolic dims and values."""
import numpy as np
import pytest

from tests.ir.shape_rules import infer
from workbench.errors import ShapeError
from workbench.ir.ops import Info

A = Info("float32", ("batch", 1, "w"))
B = Info("float32", (5, 1))


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons_give_bool(op):
    assert infer(op, A, B) == Info("bool", ("batch", 5, "w"))


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic_gives_bool(op):
    assert infer(op, Info("bool", ("n", 1)), Info("bool", (4,))) == Info("bool", ("n", 4))


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise_keeps_dtype(op):
    assert infer(op, Info("uint8", ("n", 1)), Info("uint8", (4,))) == Info("uint8", ("n", 4))


def test_unary_logic_and_tests():
    assert infer("Not", Info("bool", ("n",))) == Info("bool", ("n",))
    assert infer("BitwiseNot", Info("int32", ("n",))) == Info("int32", ("n",))
    assert infer("IsNaN", A) == Info("bool", A.shape)
    assert infer("IsInf", A, detect_negative=0) == Info("bool", A.shape)


def test_bit_shift_needs_direction_and_one_dtype():
    x = Info("uint32", ("n", 2))
    assert infer("BitShift", x, Info("uint32", (2,)), direction="LEFT") == x
    with pytest.raises(ShapeError, match="direction"):
        infer("BitShift", x, x)
    with pytest.raises(ShapeError, match="one dtype"):
        infer("BitShift", x, Info("uint8", (2,)), direction="RIGHT")


def test_where_broadcasts_condition_and_branches():
    out = infer("Where", Info("bool", ("n", 1, 1)), Info("int64", (3, 1)), Info("int64", ("w",)))
    assert out == Info("int64", ("n", 3, "w"))
    with pytest.raises(ShapeError, match="one dtype"):
        infer("Where", Info("bool", (1,)), Info("int64", (1,)), Info("float32", (1,)))


# ---- torch's expand: Where(Equal(shape, -1), ones, shape) ----------------------------------
SHAPE = Info("int64", (3,), ("batch", 3, "seq"))


def test_equal_of_symbolic_dims_with_negative_constant_is_known_false():
    out = infer("Equal", SHAPE, Info("int64", (), np.array(-1)))
    assert out.dtype == "bool" and out.shape == (3,)
    np.testing.assert_array_equal(out.value, [False, False, False])


def test_equal_of_identical_dims_is_known_but_unknown_otherwise():
    same = infer("Equal", SHAPE, SHAPE)
    np.testing.assert_array_equal(same.value, [True, True, True])
    assert infer("Equal", SHAPE, Info("int64", (3,), np.array([2, 3, 4]))).value is None


def test_where_selects_symbolic_values_under_a_known_condition():
    cond = Info("bool", (3,), np.array([True, False, False]))
    ones = Info("int64", (3,), np.array([1, 1, 1]))
    assert infer("Where", cond, ones, SHAPE).value == (1, 3, "seq")


def test_where_without_known_condition_has_no_value():
    assert infer("Where", Info("bool", (3,)), SHAPE, SHAPE).value is None
