"""Shape rules of elementwise math and Cast, with symbolic dims and symbolic shape-tensor values."""
import numpy as np
import pytest

from tests.ir.shape_rules import infer
from workbench.errors import ShapeError, UnsupportedError
from workbench.ir import dims
from workbench.ir.opdefs.elementwise import UNARY_MATH
from workbench.ir.ops import Info

X = Info("float32", ("batch", 3, "h", "w"))


@pytest.mark.parametrize("op", sorted(UNARY_MATH))
def test_unary_keeps_shape_and_dtype(op):
    assert infer(op, X) == Info("float32", ("batch", 3, "h", "w"))
    assert infer(op, Info("float16", None)) == Info("float16", None)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Mod"])
def test_binary_broadcasts_symbolic_dims(op):
    out = infer(op, X, Info("float32", (3, 1, "w")))
    assert out.shape == ("batch", 3, "h", "w") and out.dtype == "float32"
    assert infer(op, Info("int64", ("n", 1)), Info("int64", (1, "m"))).shape == ("n", "m")


def test_binary_with_unknown_rank_gives_unknown_shape():
    assert infer("Add", X, Info("float32", None)) == Info("float32", None)


def test_binary_rejects_mismatched_dtypes_and_static_dims():
    with pytest.raises(ShapeError, match="one dtype"):
        infer("Add", X, Info("float16", (1,)))
    with pytest.raises(ShapeError, match="broadcast"):
        infer("Mul", Info("float32", (2, 3)), Info("float32", (4,)))


def test_pow_takes_the_base_dtype():
    assert infer("Pow", Info("float16", ("n", 4)), Info("int64", ())) == Info("float16", ("n", 4))


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
def test_variadic_broadcasts_every_input(op):
    out = infer(op, Info("float32", ("b", 1, 4)), Info("float32", (3, 1)), Info("float32", ()))
    assert out == Info("float32", ("b", 3, 4))
    assert infer(op, Info("float32", ("b",))) == Info("float32", ("b",))


def test_cast_takes_dtype_from_code():
    assert infer("Cast", X, to=10) == Info("float16", X.shape)
    assert infer("Cast", X, to=16).dtype == "bfloat16"
    assert infer("Cast", X, to=17, saturate=0).dtype == "float8_e4m3fn"
    assert infer("CastLike", X, Info("int8", (1,))) == Info("int8", X.shape)


def test_cast_errors_say_what_to_do():
    with pytest.raises(UnsupportedError, match="strings"):
        infer("Cast", X, to=8)
    with pytest.raises(ShapeError, match="data type code"):
        infer("Cast", X, to=None)


# ---- symbolic values of shape tensors: Shape(x) -> arithmetic -> Reshape -------------------
SHAPE = Info("int64", (4,), ("batch", 3, "h", "w"))


def test_arithmetic_keeps_symbolic_shape_values():
    two = Info("int64", (), np.array(2))
    assert infer("Mul", SHAPE, two).value == ("batch*2", 6, "h*2", "w*2")
    assert infer("Div", SHAPE, Info("int64", (1,), np.array([3]))).value == ("batch//3", 1, "h//3", "w//3")
    added = infer("Add", SHAPE, Info("int64", (4,), np.array([0, 1, 0, -1]))).value
    assert dims.substitute(added, {"batch": 2, "h": 5, "w": 7}) == (2, 4, 5, 6)
    assert infer("Sub", Info("int64", (1,), ("n",)), Info("int64", (1,), ("n",))).value == ("n-n",)


def test_integer_division_of_known_dims_truncates():
    assert infer("Div", Info("int64", (2,), (-7, "n")), Info("int64", (), np.array(2))).value == (-3, "n//2")


def test_no_value_without_a_symbolic_operand():
    a = Info("int64", (2,), np.array([1, 2]))
    assert infer("Mul", a, a).value is None  # all-constant: left to the evaluator
    assert infer("Mul", SHAPE, Info("int64", (4,))).value is None  # unknown operand


def test_cast_keeps_symbolic_value_to_integers_only():
    assert infer("Cast", SHAPE, to=7).value == SHAPE.value
    assert infer("Cast", SHAPE, to=6).value == SHAPE.value
    assert infer("Cast", SHAPE, to=1).value is None


def test_bit_cast_keeps_shape_and_refuses_different_widths():
    assert infer("BitCast", Info("float32", ("N", 2)), to=6) == Info("int32", ("N", 2))
    with pytest.raises(ShapeError, match="width"):
        infer("BitCast", Info("float32", (2,)), to=11)
