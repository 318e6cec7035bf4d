import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir.ops import Info

SYM = ("N", 3, "H", "W")

POOL_CASES = [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[2, 2]),
    dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    dict(kernel_shape=[2, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(kernel_shape=[2, 2], auto_pad="SAME_LOWER"),
    dict(kernel_shape=[2, 2], dilations=[2, 2], strides=[1, 2]),
]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("attrs", POOL_CASES)
@pytest.mark.parametrize("hw", [(7, 8), (10, 9)])
def test_pool_symbolic_dims_match_kernel(op, attrs, hw):
    out = agrees(op, [rand(2, 3, *hw)], [SYM], {"N": 2, "H": hw[0], "W": hw[1]}, **attrs)
    assert out[0].shape[:2] == ("N", 3)


def test_maxpool_has_int64_indices_unless_hidden_attribute_drops_them():
    both = infer("MaxPool", Info("float16", SYM), kernel_shape=[2, 2])
    assert [i.dtype for i in both] == ["float16", "int64"]
    assert len(infer("MaxPool", Info("float16", SYM), kernel_shape=[2, 2], _indices=0)) == 1


def test_ceil_mode_with_a_possible_dropped_window_gives_a_fresh_dim():
    # pads end + stride > kernel extent: whether the last window is dropped depends on H
    out = infer("MaxPool", Info("float32", SYM), kernel_shape=[2, 2], strides=[3, 3], pads=[0, 0, 2, 2],
                ceil_mode=1)[0]
    assert str(out.shape[2]).startswith("pool")


def test_pool_requires_kernel_shape():
    with pytest.raises(ShapeError, match="kernel_shape"):
        infer("AveragePool", Info("float32", SYM))


def test_kernel_larger_than_input_is_an_error():
    with pytest.raises(ShapeError, match="smaller than the kernel"):
        infer("MaxPool", Info("float32", (1, 3, 2, 2)), kernel_shape=[3, 3])


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
def test_global_pools_keep_rank(op):
    assert infer(op, Info("float32", ("N", "C", "D", "H", "W")))[0].shape == ("N", "C", 1, 1, 1)
    agrees(op, [rand(2, 3, 5, 4)], [("N", 3, "H", "W")], {"N": 2})
