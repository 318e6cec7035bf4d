"""Shape rules with symbolic dims: Constant, ConstantOfShape, Range, EyeLike, Dropout, Det, Col2Im."""
import numpy as np
import pytest

from workbench.errors import ShapeError, UnsupportedError
from tests.ir.shape_rules import rule
from workbench.ir.ops import Info


def scalar(v, dtype="int64"):
    return Info(dtype, (), np.array(v, dtype))


@pytest.mark.parametrize("attrs,dtype,shape", [({"value": np.ones((2, 3), np.float16)}, "float16", (2, 3)),
                                               ({"value_float": 1.0}, "float32", ()),
                                               ({"value_ints": [1, 2]}, "int64", (2,)),
                                               ({"value_strings": ["a"]}, "object", (1,))])
def test_constant_carries_its_value(attrs, dtype, shape):
    out = rule("Constant", **attrs)
    assert out.dtype == dtype and out.shape == shape and out.value.shape == shape


def test_constant_needs_a_dense_value():
    with pytest.raises(ShapeError):
        rule("Constant")
    with pytest.raises(UnsupportedError):
        rule("Constant", sparse_value=object())


def test_constant_of_shape():
    assert rule("ConstantOfShape", Info("int64", (2,), ("b", 4))) == Info("float32", ("b", 4))
    out = rule("ConstantOfShape", Info("int64", (2,), np.array([2, 2])), value=np.array([3], np.int32))
    assert out.dtype == "int32" and out.shape == (2, 2)
    np.testing.assert_array_equal(out.value, np.full((2, 2), 3))
    assert len(rule("ConstantOfShape", Info("int64", (3,))).shape) == 3


@pytest.mark.parametrize("start,limit,delta,want", [(0, 10, 3, (4,)), (10, 0, -3, (4,)), (5, 1, 1, (0,)),
                                                    (0, "seq", 1, ("seq",)), (2, "n", 2, ("ceil((n-2)/2)",))])
def test_range_length(start, limit, delta, want):
    lim = Info("int64", (), (limit,)) if isinstance(limit, str) else scalar(limit)
    assert rule("Range", scalar(start), lim, scalar(delta)).shape == want


def test_range_float_and_unknown():
    out = rule("Range", scalar(0.0, "float32"), scalar(1.0, "float32"), scalar(0.25, "float32"))
    assert out == Info("float32", (4,))
    out = rule("Range", scalar(0), Info("int64", ()), scalar(1))
    assert len(out.shape) == 1 and isinstance(out.shape[0], str)


def test_eye_like():
    assert rule("EyeLike", Info("float32", ("n", "n")), dtype=7) == Info("int64", ("n", "n"))
    assert rule("EyeLike", Info("int8", (3, 4))) == Info("int8", (3, 4))
    with pytest.raises(ShapeError):
        rule("EyeLike", Info("int8", (3,)))


def test_dropout_inference_passes_value_and_mask():
    x = Info("float32", ("b", 4), None)
    out, mask = rule("Dropout", x, scalar(0.5, "float32"))
    assert out == x and mask == Info("bool", ("b", 4))


def test_det_and_col2im():
    assert rule("Det", Info("float32", ("b", 3, 3))).shape == ("b",)
    out = rule("Col2Im", Info("float32", ("n", 12, 20)), Info("int64", (2,), np.array([5, 8])),
               Info("int64", (2,), np.array([2, 2])))
    assert out.shape == ("n", 3, 5, 8)
