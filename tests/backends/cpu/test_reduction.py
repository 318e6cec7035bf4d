"""Reduction, ArgMax/ArgMin, CumSum and CumProd kernels against onnx.reference."""
import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference

REDUCTIONS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
AXES = [None, [1], [0, 2], [-1], [2, -3]]


def _data(op, dtype="float32"):
    # positive for the log of a sum; near 1 so that products stay well scaled
    low, high = (0.5, 1.5) if op in ("ReduceLogSum", "ReduceProd") else (-2, 2)
    return rand(3, 4, 5, dtype=dtype, low=low, high=high)


def _axes(axes):
    return None if axes is None else np.array(axes, dtype=np.int64)


@pytest.mark.parametrize("keepdims", [1, 0])
@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("op", REDUCTIONS)
def test_reduction_with_axes_input(op, axes, keepdims):
    check(op, [_data(op), _axes(axes)], {"keepdims": keepdims})


@pytest.mark.parametrize("op", REDUCTIONS)
def test_empty_axes_is_a_noop_on_request(op):
    empty = np.array([], dtype=np.int64)
    check(op, [_data(op), empty], {"noop_with_empty_axes": 1})
    check(op, [_data(op), empty], {"noop_with_empty_axes": 0})
    check(op, [_data(op)], {"noop_with_empty_axes": 1, "keepdims": 0})


@pytest.mark.parametrize("axes", [[1], [0, 2]], ids=str)
@pytest.mark.parametrize("op", REDUCTIONS)
def test_reduction_with_axes_attribute_of_old_opsets(op, axes):
    opset = 11 if op == "ReduceSum" else 13
    x = _data(op)
    (want,) = reference(op, [x], {"axes": axes, "keepdims": 0}, opset=opset)
    (got,) = ours(op, [x], {"axes": axes, "keepdims": 0})
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # onnx.reference's np.mean of an empty set
@pytest.mark.parametrize("op", REDUCTIONS)
def test_reduction_of_an_empty_set_gives_its_identity(op):
    x = np.zeros((2, 0, 3), dtype=np.float32)
    check(op, [x, np.array([1], dtype=np.int64)], {"keepdims": 1})


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("op", REDUCTIONS)
def test_reduction_dtypes(op, dtype):
    check(op, [_data(op, dtype), _axes([1])], rtol=3e-3 if dtype == "float16" else 1e-7, atol=1e-2)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceSumSquare"])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_reductions(op, dtype):
    if op == "ReduceSumSquare" and dtype == "int32":
        pytest.skip("onnx.reference returns int64 here; ONNX says the input's dtype")
    check(op, [rand(3, 4, dtype=dtype, low=-5, high=5), _axes([0])])


def test_bfloat16_sums_accumulate_in_float32():
    x = np.full(4096, 1.0, dtype=ml_dtypes.bfloat16)  # a bfloat16 accumulator stalls at 256
    (out,) = ours("ReduceSum", [x, _axes([0])], {"keepdims": 0})
    assert out.dtype == ml_dtypes.bfloat16 and float(out) == 4096


def test_log_sum_exp_is_stable_for_large_inputs():
    x = np.array([[1000.0, 1000.0], [-np.inf, -np.inf]], dtype=np.float32)
    (out,) = ours("ReduceLogSumExp", [x, _axes([1])], {"keepdims": 0})
    np.testing.assert_allclose(out, [1000 + np.log(2), -np.inf])


def _ties(dtype):
    return rand(3, 4, 5, dtype="float32", low=0, high=3).astype(dtype)  # few values: many ties


@pytest.mark.parametrize("select_last_index", [0, 1])
@pytest.mark.parametrize("keepdims", [1, 0])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", ["float32", "int32", "float16"])
def test_arg_extremes(op, axis, keepdims, select_last_index, dtype):
    attrs = {"axis": axis, "keepdims": keepdims, "select_last_index": select_last_index}
    check(op, [_ties(dtype)], attrs)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
def test_cumulative(op, axis, exclusive, reverse, dtype):
    x = rand(3, 4, 5, dtype=dtype, low=-9, high=9)
    attrs = {"exclusive": exclusive, "reverse": reverse}
    check(op, [x, np.array(axis, dtype=np.int64)], attrs, opset=26)
    # a 1-element axis tensor, as some exporters write it, means the same
    np.testing.assert_array_equal(ours(op, [x, np.array([axis], dtype=np.int32)], attrs)[0],
                                  ours(op, [x, np.array(axis, dtype=np.int64)], attrs)[0])


def test_cum_sum_of_float16_accumulates_in_float32():
    x = np.full(3000, 1.0, dtype=np.float16)  # a float16 accumulator stalls at 2048
    (out,) = ours("CumSum", [x, np.array(0)])
    assert out.dtype == np.float16 and out[-1] == 3000
