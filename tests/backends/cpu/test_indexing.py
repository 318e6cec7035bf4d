"""Indexing kernels vs onnx.reference: Gather*, Scatter*, OneHot, TopK, NonZero, Unique, Compress."""
import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand

DTYPES = ["float32", "float16", "int8", "int64", ml_dtypes.bfloat16]


def ints(*shape, high, low=None, seed=None):
    """Random int64 indices in [low, high) (low defaults to -high: negative indices count from the end)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-high if low is None else low, high, size=shape).astype(np.int64)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("indices_shape", [(), (3,), (2, 2)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gather(axis, indices_shape, dtype):
    data = rand(4, 5, 3, dtype=dtype)
    check("Gather", [data, ints(*indices_shape, high=data.shape[axis])], {"axis": axis})


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("dtype", ["float32", "int32", ml_dtypes.bfloat16])
def test_gather_elements(axis, dtype):
    data = rand(4, 5, 3, dtype=dtype)
    shape = [4, 5, 3]
    shape[axis] = 2
    indices = ints(*shape, high=data.shape[axis])
    check("GatherElements", [data, indices], {"axis": axis})
    # onnx.reference mishandles a negative axis: compare with the positive one
    np.testing.assert_array_equal(ours("GatherElements", [data, indices], {"axis": axis - 3})[0],
                                  ours("GatherElements", [data, indices], {"axis": axis})[0])


@pytest.mark.parametrize("data_shape,indices_shape,batch_dims", [
    ((4, 5), (3, 2), 0), ((4, 5, 6), (2, 1), 0), ((4, 5, 6), (2, 3, 2), 0), ((2, 5, 6), (2, 1), 1),
    ((2, 5, 6), (2, 3, 2), 1), ((2, 3, 6, 4), (2, 3, 2, 1), 2)])
def test_gather_nd(data_shape, indices_shape, batch_dims):
    depth = indices_shape[-1]
    limit = min(data_shape[batch_dims:batch_dims + depth])
    check("GatherND", [rand(*data_shape), ints(*indices_shape, high=limit)], {"batch_dims": batch_dims})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_scatter_nd(reduction, dtype):
    data = rand(4, 5, 3, dtype=dtype)
    # distinct rows so "none" is well defined; the reductions also see repeats below
    indices = np.array([[0, 1], [3, 4], [2, 2]], np.int64) if reduction == "none" else \
        np.array([[0, 1], [3, 4], [0, 1], [-1, -1]], np.int64)
    updates = rand(len(indices), 3, dtype=dtype)
    check("ScatterND", [data, indices, updates], {"reduction": reduction})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements(reduction, axis):
    data = rand(4, 5, 3)
    shape = [4, 5, 3]
    shape[axis] = 2
    if reduction == "none":  # distinct targets along the axis: 1 and the last entry
        column = np.array([1, -1], np.int64).reshape([-1 if i == axis % 3 else 1 for i in range(3)])
        indices = np.broadcast_to(column, shape).copy()
    else:
        indices = ints(*shape, high=data.shape[axis])
    check("ScatterElements", [data, indices, rand(*shape)], {"axis": axis, "reduction": reduction})


def test_scatter_deprecated_alias():
    data, indices, updates = rand(3, 3), np.array([[1, 0, 2], [0, 2, 1]], np.int64), rand(2, 3)
    (y,) = ours("Scatter", [data, indices, updates], {"axis": 0})
    (want,) = ours("ScatterElements", [data, indices, updates], {"axis": 0})
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("indices_dtype", ["int64", "int32", "float32"])
def test_one_hot(axis, indices_dtype):
    indices = np.array([[0, 3, -1], [7, -9, 2]]).astype(indices_dtype)  # 7 and -9 are out of range
    check("OneHot", [indices, np.array(5, np.int64), np.array([-2.0, 3.0], np.float32)], {"axis": axis})


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("dtype", ["float32", "int64", "uint8", "float16"])
def test_top_k_orders_ties_by_index(largest, axis, dtype):
    x = np.random.default_rng().integers(0, 4, size=(6, 7)).astype(dtype)  # many ties
    check("TopK", [x, np.array([3], np.int64)], {"axis": axis, "largest": largest}, n_out=2)


def test_top_k_old_attribute():
    values, indices = ours("TopK", [np.array([[1, 5, 3, 5]], np.float32)], {"k": 2})
    np.testing.assert_array_equal(indices, [[1, 3]])


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_non_zero(dtype):
    x = (rand(3, 4) > 0.5).astype(dtype)
    check("NonZero", [x])


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_unique_sorted(axis):
    x = np.random.default_rng().integers(0, 3, size=(4, 3)).astype(np.float32)
    check("Unique", [x], {"sorted": 1} if axis is None else {"axis": axis, "sorted": 1}, n_out=4)


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_unique_unsorted_keeps_first_occurrence_order(dtype):
    # onnx.reference handles unsorted Unique only for 1-D inputs without an axis
    x = np.random.default_rng().integers(0, 5, size=12).astype(dtype)
    check("Unique", [x], {"sorted": 0}, n_out=4)


def test_unique_unsorted_along_an_axis():
    x = np.array([[2, 1, 2, 0], [5, 4, 5, 3]], np.float32)
    y, first, inverse, counts = ours("Unique", [x], {"axis": 1, "sorted": 0})
    np.testing.assert_array_equal(y, [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(first, [0, 1, 3])
    np.testing.assert_array_equal(inverse, [0, 1, 0, 2])
    np.testing.assert_array_equal(counts, [2, 1, 1])


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("dtype", ["float32", ml_dtypes.bfloat16])
def test_compress(axis, dtype):
    condition = np.array([True, False, True])
    check("Compress", [rand(3, 3, dtype=dtype), condition], {} if axis is None else {"axis": axis})
