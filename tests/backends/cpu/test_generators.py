"""Generator kernels vs onnx.reference: Constant, ConstantOfShape, Range, EyeLike."""
import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

from tests.oracle import check, ours, rand, reference


@pytest.mark.parametrize("attrs", [{"value_float": 2.5}, {"value_floats": [1.0, 2.0]}, {"value_int": 7},
                                   {"value_ints": [3, 4, 5]}])
def test_constant_scalar_forms(attrs):
    (want,) = reference("Constant", [], attrs)
    (got,) = ours("Constant", [], attrs)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


def test_constant_tensor_value():
    value = rand(2, 3)
    (got,) = ours("Constant", [], {"value": value})
    (want,) = reference("Constant", [], {"value": numpy_helper.from_array(value)})
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(2, 3), (0,), (4,), ()])
@pytest.mark.parametrize("value", [None, np.array([7], np.int32), np.array([1.5], np.float16)])
def test_constant_of_shape(shape, value):
    attrs = {} if value is None else {"value": value}
    got = ours("ConstantOfShape", [np.array(shape, np.int64)], attrs)[0]
    ref_attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    want = reference("ConstantOfShape", [np.array(shape, np.int64)], ref_attrs)[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("start,limit,delta", [(0, 10, 3), (10, 0, -3), (5, 5, 1), (1, 0, 1), (-2, 9, 2)])
@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64", "float16", ml_dtypes.bfloat16])
def test_range(start, limit, delta, dtype):
    check("Range", [np.array(v, dtype=dtype) for v in (start, limit, delta)], opset=21)


@pytest.mark.parametrize("k", [0, 1, -2, 5])
@pytest.mark.parametrize("dtype", [None, TensorProto.INT32, TensorProto.DOUBLE, TensorProto.BOOL])
def test_eye_like(k, dtype):
    attrs = {"k": k} if dtype is None else {"k": k, "dtype": dtype}
    check("EyeLike", [rand(3, 4)], attrs)
