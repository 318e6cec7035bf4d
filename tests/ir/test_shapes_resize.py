import numpy as np
import pytest

from tests.ir.shapecheck import infer
from workbench.errors import ShapeError
from workbench.ir import dims
from workbench.ir.ops import Info

X = Info("float32", ("N", 3, "H", 10))


def _const(values, dtype):
    arr = np.array(values, dtype=dtype)
    return Info(dtype, arr.shape, arr)


def test_resize_scales_keep_names_for_whole_factors():
    out = infer("Resize", X, None, _const([1, 1, 2, 1.5], "float32"))[0]
    assert dims.substitute(out.shape, {"N": 1, "H": 5}) == (1, 3, 10, 15)


def test_resize_fractional_scale_on_symbolic_dim_is_fresh():
    out = infer("Resize", X, None, _const([1, 1, 0.5, 0.5], "float32"))[0]
    assert isinstance(out.shape[2], str) and out.shape[2] != "H" and out.shape[3] == 5


def test_resize_sizes_with_axes_and_symbolic_values():
    out = infer("Resize", X, None, None, Info("int64", (2,), ("S", 7)), axes=[2, 3])[0]
    assert out.shape == ("N", 3, "S", 7)


@pytest.mark.parametrize("policy, expect", [("not_larger", (8, 4)), ("not_smaller", (16, 8))])
def test_resize_keep_aspect_ratio(policy, expect):
    x = Info("float32", (1, 1, 8, 4))
    out = infer("Resize", x, None, None, _const([8, 8], "int64"), axes=[2, 3], keep_aspect_ratio_policy=policy)
    assert out[0].shape[2:] == expect


def test_resize_unknown_sizes_give_fresh_dims_of_right_rank():
    out = infer("Resize", X, None, None, Info("int64", (4,)))[0]
    assert len(out.shape) == 4


def test_resize_empty_scales_with_sizes_and_opset10_form():
    out = infer("Resize", X, Info("float32", (0,)), Info("float32", (0,)), _const([1, 3, 4, 5], "int64"))
    assert out[0].shape == (1, 3, 4, 5)
    out = infer("Resize", X, _const([1, 1, 3, 1], "float32"))[0]
    assert dims.substitute(out.shape, {"N": 1, "H": 5}) == (1, 3, 15, 10)


def test_resize_needs_scales_or_sizes():
    with pytest.raises(ShapeError, match="scales or sizes"):
        infer("Resize", X)


def test_upsample_scales_input_and_attribute():
    out = infer("Upsample", X, _const([1, 1, 2, 2], "float32"))[0]
    assert dims.substitute(out.shape, {"N": 1, "H": 5}) == (1, 3, 10, 20)
    out = infer("Upsample", X, scales=[1.0, 1.0, 3.0, 1.0])[0]
    assert dims.substitute(out.shape, {"N": 1, "H": 5}) == (1, 3, 15, 10)
