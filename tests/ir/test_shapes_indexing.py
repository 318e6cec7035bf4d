"""Shape rules with symbolic dims: Gather*, Scatter*, OneHot, TopK, NonZero, Unique, Compress."""
import numpy as np
import pytest

from workbench.errors import ShapeError
from tests.ir.shape_rules import rule
from workbench.ir.ops import Info


def is_unknown(d):
    return isinstance(d, str)


EMB = Info("float32", (30522, 768))
IDS = Info("int64", ("batch", "seq"))


@pytest.mark.parametrize("axis,indices,want", [
    (0, IDS, ("batch", "seq", 768)), (1, Info("int64", ()), (30522,)), (-1, Info("int64", (3, 2)), (30522, 3, 2))])
def test_gather(axis, indices, want):
    assert rule("Gather", EMB, indices, axis=axis).shape == want


def test_gather_rejects_out_of_range_constant_indices_of_shape_values():
    with pytest.raises(ShapeError):
        rule("Gather", Info("int64", (2,), ("b", 3)), Info("int64", (), np.array(2)))


def test_gather_elements_and_nd():
    data = Info("float32", ("b", 5, 6))
    assert rule("GatherElements", data, Info("int64", ("b", 2, 6)), axis=1).shape == ("b", 2, 6)
    assert rule("GatherND", data, Info("int64", ("k", 2))).shape == ("k", 6)
    assert rule("GatherND", data, Info("int64", ("b", 3, 1)), batch_dims=1).shape == ("b", 3, 6)
    with pytest.raises(ShapeError):
        rule("GatherND", data, Info("int64", ("k", 4)))


@pytest.mark.parametrize("op,attrs", [("ScatterND", {"reduction": "add"}), ("ScatterElements", {"axis": 1}),
                                      ("Scatter", {})])
def test_scatters_keep_data_shape(op, attrs):
    data = Info("float16", ("b", 5, 6))
    assert rule(op, data, Info("int64", ("k", 2)), Info("float16", ("k", 6)), **attrs) == Info("float16", ("b", 5, 6))


@pytest.mark.parametrize("axis,want", [(-1, ("batch", "seq", 10)), (0, (10, "batch", "seq")), (1, ("batch", 10, "seq"))])
def test_one_hot(axis, want):
    depth = Info("float32", (), np.array(10.0, np.float32))
    out = rule("OneHot", IDS, depth, Info("bfloat16", (2,)), axis=axis)
    assert out == Info("bfloat16", want)


def test_one_hot_with_unknown_depth():
    out = rule("OneHot", IDS, Info("int64", ()), Info("float32", (2,)))
    assert out.shape[:2] == ("batch", "seq") and is_unknown(out.shape[2])


def test_top_k():
    x = Info("float32", ("b", 100))
    values, indices = rule("TopK", x, Info("int64", (1,), np.array([5])))
    assert values == Info("float32", ("b", 5)) and indices == Info("int64", ("b", 5))
    values, _ = rule("TopK", x, Info("int64", (1,)), axis=0)
    assert is_unknown(values.shape[0]) and values.shape[1] == 100
    assert rule("TopK", x, k=3)[0].shape == ("b", 3)


def test_data_dependent_counts_are_fresh_dims():
    nz = rule("NonZero", Info("bool", ("b", 4, 4)))
    assert nz.dtype == "int64" and nz.shape[0] == 3 and is_unknown(nz.shape[1])
    y, first, inverse, counts = rule("Unique", Info("float32", ("b", 4)))
    assert len(y.shape) == 1 and y.shape == first.shape == counts.shape and inverse.shape == ("b*4",)
    y, first, inverse, counts = rule("Unique", Info("float32", ("b", 4)), axis=1)
    assert y.shape[0] == "b" and y.shape[1] == first.shape[0] and inverse.shape == (4,)


def test_compress():
    x = Info("float32", ("b", 5))
    assert rule("Compress", x, Info("bool", (5,), np.array([1, 0, 1, 1, 0], bool)), axis=1).shape == ("b", 3)
    out = rule("Compress", x, Info("bool", (5,)), axis=-1)
    assert out.shape[0] == "b" and is_unknown(out.shape[1])
    assert len(rule("Compress", x, Info("bool", (5,))).shape) == 1
