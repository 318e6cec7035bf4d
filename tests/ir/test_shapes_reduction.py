"""Shape rules of reductions, ArgMax/ArgMin and CumSum with symbolic dims."""
import numpy as np
import pytest

from tests.ir.shape_rules import infer
from workbench.errors import ShapeError
from workbench.ir.opdefs.reduction import REDUCTIONS
from workbench.ir.ops import Info

X = Info("float32", ("batch", 3, "h", "w"))


def axes(*values):
    return Info("int64", (len(values),), np.array(values, dtype=np.int64))


@pytest.mark.parametrize("op", REDUCTIONS)
def test_axes_input_with_and_without_keepdims(op):
    assert infer(op, X, axes(2, -1)) == Info("float32", ("batch", 3, 1, 1))
    assert infer(op, X, axes(2, -1), keepdims=0) == Info("float32", ("batch", 3))


@pytest.mark.parametrize("op", REDUCTIONS)
def test_axes_attribute_of_old_opsets(op):
    assert infer(op, X, axes=[0], keepdims=0) == Info("float32", (3, "h", "w"))


def test_no_axes_reduces_all_unless_noop():
    assert infer("ReduceSum", X) == Info("float32", (1, 1, 1, 1))
    assert infer("ReduceMean", X, keepdims=0) == Info("float32", ())
    assert infer("ReduceMax", X, axes(), noop_with_empty_axes=1) == X
    assert infer("ReduceMax", X, axes(), keepdims=0) == Info("float32", ())


def test_axes_known_only_at_run_time():
    unknown_axes = Info("int64", (2,))
    kept = infer("ReduceSum", X, unknown_axes)
    assert len(kept.shape) == 4 and all(isinstance(d, str) for d in kept.shape)
    assert len(infer("ReduceSum", X, unknown_axes, keepdims=0).shape) == 2
    assert infer("ReduceSum", X, Info("int64", None), keepdims=0).shape is None


def test_out_of_range_axis_is_a_shape_error():
    with pytest.raises(ShapeError, match="out of range"):
        infer("ReduceSum", X, axes(4))


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_extremes_give_int64(op):
    assert infer(op, X, axis=1) == Info("int64", ("batch", 1, "h", "w"))
    assert infer(op, X, axis=-1, keepdims=0, select_last_index=1) == Info("int64", ("batch", 3, "h"))
    assert infer(op, Info("float16", None)) == Info("int64", None)


@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
def test_cumulative_ops_keep_shape(op):
    assert infer(op, X, Info("int64", ()), exclusive=1, reverse=1) == X
    with pytest.raises(ShapeError, match="scalar"):
        infer(op, X, Info("int64", (1, 1)))
