"""Shape rules with symbolic dims: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Expand, Identity."""
import numpy as np
import pytest

from workbench.errors import ShapeError
from tests.ir.shape_rules import rule, i64
from workbench.ir.ops import Info


X = Info("float32", ("batch", 3, "h", 8))


@pytest.mark.parametrize("attrs,want", [({}, ("batch", 3, "h", 8)), ({"start": 1}, (3, "h", 8)),
                                        ({"end": -2}, ("batch", 3)), ({"start": -9, "end": 99}, ("batch", 3, "h", 8)),
                                        ({"start": 3, "end": 1}, ())])
def test_shape_value_is_the_sliced_dims(attrs, want):
    out = rule("Shape", X, **attrs)
    assert out.dtype == "int64" and out.shape == (len(want),)
    assert tuple(out.value) == want


def test_shape_of_unknown_rank_is_1d():
    out = rule("Shape", Info("float32", None))
    assert len(out.shape) == 1 and out.value is None


@pytest.mark.parametrize("target,allowzero,want", [
    ((0, 0, -1), 0, ("batch", 3, "h*8")), ((0, -1), 0, ("batch", "h*24")), ((-1, 8), 0, ("batch*h*3", 8)),
    ((0, 3, "h", 8), 0, ("batch", 3, "h", 8)), ((0, 24, "h"), 1, (0, 24, "h"))])
def test_reshape_resolves_zero_and_minus_one(target, allowzero, want):
    shape_in = Info("int64", (len(target),), tuple(target))
    out = rule("Reshape", X, shape_in, allowzero=allowzero)
    assert out.shape == want


def test_reshape_minus_one_cancels_symbols():
    out = rule("Reshape", Info("float32", ("b", "s", 12, 64)), Info("int64", (3,), ("b", -1, 64)))
    assert out.shape == ("b", "s*12", 64)
    back = rule("Reshape", Info("float32", ("b*s", 768)), Info("int64", (3,), ("b", -1, 768)))
    assert back.shape == ("b", "s", 768)


def test_reshape_with_unknown_target_keeps_its_rank():
    out = rule("Reshape", X, Info("int64", (3,)))
    assert len(out.shape) == 3 and all(isinstance(d, str) for d in out.shape)


def test_reshape_old_attribute_form():
    assert rule("Reshape", Info("float32", (2, 6)), shape=[3, -1]).shape == (3, 4)


@pytest.mark.parametrize("shape,target", [((2, 3), (4, 2)), ((2, 3), (-1, -1)), ((2, 3), (4, -1))])
def test_reshape_rejects_impossible_targets(shape, target):
    with pytest.raises(ShapeError):
        rule("Reshape", Info("float32", shape), i64(*target))


@pytest.mark.parametrize("axis,want", [(0, (1, "batch*h*24")), (1, ("batch", "h*24")), (2, ("batch*3", "h*8")),
                                       (4, ("batch*h*24", 1)), (-1, ("batch*h*3", 8))])
def test_flatten(axis, want):
    assert rule("Flatten", X, axis=axis).shape == want


def test_flatten_rejects_bad_axis():
    with pytest.raises(ShapeError):
        rule("Flatten", X, axis=5)


@pytest.mark.parametrize("axes,want", [((1,), ("batch", 3, 1, 8)), ((-2, 1), ("batch", 3, 8)),
                                       (None, ("batch", 3, 8))])
def test_squeeze(axes, want):
    x = Info("float32", ("batch", 1, 3, 1, 8))
    assert rule("Squeeze", x, None if axes is None else i64(*axes)).shape == want


def test_squeeze_old_attribute_and_errors():
    assert rule("Squeeze", Info("float32", (1, "n")), axes=[0]).shape == ("n",)
    with pytest.raises(ShapeError):
        rule("Squeeze", Info("float32", (2, "n")), i64(0))


@pytest.mark.parametrize("axes,want", [((0,), (1, "batch", 3, "h", 8)), ((-1,), ("batch", 3, "h", 8, 1)),
                                       ((1, 3), ("batch", 1, 3, 1, "h", 8)), ((5, 0), (1, "batch", 3, "h", 8, 1))])
def test_unsqueeze(axes, want):
    assert rule("Unsqueeze", X, i64(*axes)).shape == want


def test_unsqueeze_with_unknown_axes_knows_the_rank():
    assert len(rule("Unsqueeze", X, Info("int64", (2,))).shape) == 6


def test_unsqueeze_rejects_repeated_axes():
    with pytest.raises(ShapeError):
        rule("Unsqueeze", X, i64(0, -6))


@pytest.mark.parametrize("x,target,want", [
    ((1, "s", 1), ("b", 1, 4), ("b", "s", 4)), ((3, 1), (2, 1, 1), (2, 3, 1)), (("n",), (1,), ("n",))])
def test_expand(x, target, want):
    assert rule("Expand", Info("float32", x), Info("int64", (len(target),), target)).shape == want


def test_expand_with_unknown_target_keeps_non_one_dims():
    out = rule("Expand", Info("float32", (3, 1)), Info("int64", (3,)))
    assert len(out.shape) == 3 and out.shape[1] == 3 and isinstance(out.shape[2], str)


def test_identity_and_size_carry_values():
    shape = Info("int64", (2,), ("b", 4))
    assert rule("Identity", shape) == shape
    assert rule("Size", Info("float32", ("b", 4, 2))).value == ("b*8",)
