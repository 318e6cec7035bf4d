"""Shape plumbing kernels vs onnx.reference: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze,
Expand, Identity."""
import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand

DTYPES = ["float32", "float16", "float64", "int8", "int32", "int64", ml_dtypes.bfloat16]


def i64(*values):
    return np.array(values, dtype=np.int64)


@pytest.mark.parametrize("attrs", [{}, {"start": 1}, {"end": -1}, {"start": -2, "end": 3},
                                   {"start": 3, "end": 1}, {"start": -9, "end": 9}])
def test_shape_slices_dims(attrs):
    check("Shape", [rand(2, 3, 4, 5)], attrs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_size_and_identity_keep_dtypes(dtype):
    x = rand(2, 3, 4, dtype=dtype)
    check("Size", [x])
    check("Identity", [x])


@pytest.mark.parametrize("shape,target,allowzero", [
    ((2, 3, 4), (4, 6), 0), ((2, 3, 4), (-1,), 0), ((2, 3, 4), (0, -1), 0), ((2, 3, 4), (2, 0, 2, 2), 0),
    ((2, 3, 4), (4, -1, 2), 0), ((0, 3, 4), (3, 4, 0), 1), ((2, 3, 4), (1, 1, 24), 1)])
def test_reshape(shape, target, allowzero):
    check("Reshape", [rand(*shape), i64(*target)], {"allowzero": allowzero})


def test_reshape_old_shape_attribute():
    (y,) = ours("Reshape", [rand(2, 2, 3)], {"shape": [3, 0, -1]})
    assert y.shape == (3, 2, 2)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
@pytest.mark.parametrize("dtype", ["float32", "int64", ml_dtypes.bfloat16])
def test_flatten(axis, dtype):
    check("Flatten", [rand(2, 3, 4, dtype=dtype)], {"axis": axis})


@pytest.mark.parametrize("axes", [None, (0,), (-1,), (0, 2)])
def test_squeeze(axes):
    inputs = [rand(1, 3, 1)] + ([] if axes is None else [i64(*axes)])
    check("Squeeze", inputs)


def test_squeeze_and_unsqueeze_old_axes_attribute():
    (y,) = ours("Squeeze", [rand(1, 3, 1)], {"axes": [0]})
    (z,) = ours("Unsqueeze", [rand(3, 4)], {"axes": [0, -1]})
    assert y.shape == (3, 1) and z.shape == (1, 3, 4, 1)


@pytest.mark.parametrize("axes", [(0,), (2,), (-1,), (0, 3), (4, 0, -3)])
@pytest.mark.parametrize("dtype", ["float32", "bool", "int8"])
def test_unsqueeze(axes, dtype):
    x = rand(3, 4, dtype="float32") > 0 if dtype == "bool" else rand(3, 4, dtype=dtype)
    check("Unsqueeze", [x, i64(*axes)])


def test_unsqueeze_scalar():
    check("Unsqueeze", [np.array(3.5, np.float32), i64(0)])


@pytest.mark.parametrize("shape,target", [((3, 1), (2, 1, 6)), ((3, 1), (3, 4)), ((1,), (2, 3)),
                                          ((2, 1, 4), (1, 3, 1)), ((4,), (1,))])
@pytest.mark.parametrize("dtype", ["float32", "int32", ml_dtypes.bfloat16])
def test_expand(shape, target, dtype):
    check("Expand", [rand(*shape, dtype=dtype), i64(*target)])


def test_expand_returns_a_writable_array():
    (y,) = ours("Expand", [rand(1, 3), i64(2, 3)])
    y[0, 0] = 1.0  # consumers may reuse their input buffers
