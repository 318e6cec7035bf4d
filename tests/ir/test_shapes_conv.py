import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir.ops import Info

SYM = ("N", 4, "H", "W")

CONV_CASES = [
    dict(pads=[1, 1, 1, 1]),
    dict(strides=[2, 2], pads=[1, 0, 2, 1]),
    dict(dilations=[2, 1], pads=[2, 2, 2, 2]),
    dict(auto_pad="SAME_UPPER", strides=[2, 3]),
    dict(auto_pad="SAME_LOWER", strides=[3, 2]),
    dict(auto_pad="VALID", strides=[2, 2]),
    dict(group=2, strides=[1, 2]),
    dict(group=4, pads=[1, 1, 1, 1]),
]


@pytest.mark.parametrize("attrs", CONV_CASES)
@pytest.mark.parametrize("hw", [(9, 8), (16, 11)])
def test_conv_symbolic_spatial_dims_match_kernel(attrs, hw):
    group = attrs.get("group", 1)
    w = rand(8, 4 // group, 3, 3)
    out = agrees("Conv", [rand(2, 4, *hw), w], [SYM, None], {"N": 2, "H": hw[0], "W": hw[1]}, **attrs)
    assert out[0].shape[:2] == ("N", 8)


def test_conv_keeps_plain_names_for_same_size_convs():
    out = infer("Conv", Info("float32", SYM), Info("float32", (8, 4, 3, 3)), pads=[1, 1, 1, 1])
    assert out[0].shape == ("N", 8, "H", "W")


def test_conv_rejects_channel_mismatch():
    with pytest.raises(ShapeError, match="channels"):
        infer("Conv", Info("float32", (1, 3, 8, 8)), Info("float32", (8, 4, 3, 3)))


def test_conv_needs_kernel_shape_when_weights_are_symbolic():
    with pytest.raises(ShapeError, match="kernel_shape"):
        infer("Conv", Info("float32", SYM), Info("float32", (8, 4, "k", "k")))


@pytest.mark.parametrize("attrs", [
    dict(strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(strides=[3, 2], output_padding=[1, 1]),
    dict(strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(strides=[2, 2], output_shape=[17, 15]),
    dict(group=2, dilations=[2, 2]),
])
def test_conv_transpose_symbolic_dims_match_kernel(attrs):
    out = agrees("ConvTranspose", [rand(1, 4, 8, 7), rand(4, 3, 3, 3)], [SYM, None],
                 {"N": 1, "H": 8, "W": 7}, **attrs)
    assert out[0].shape[1] == 3 * attrs.get("group", 1)


def test_integer_convs_have_integer_outputs():
    x, w = Info("uint8", SYM), Info("uint8", (8, 4, 3, 3))
    assert infer("ConvInteger", x, w)[0].dtype == "int32"
    s, zp = Info("float32", ()), Info("uint8", ())
    assert infer("QLinearConv", x, s, zp, w, s, zp, s, Info("int8", ()))[0].dtype == "int8"


def test_unknown_rank_stays_unknown():
    assert infer("Conv", Info("float32", None), Info("float32", (8, 4, 3, 3)))[0].shape is None


def test_deform_conv_is_shaped_like_conv():
    x, w = Info("float32", ("N", 4, "H", "W")), Info("float32", (8, 4, 3, 3))
    offset = Info("float32", ("N", 18, "h", "w"))
    (out,) = infer("DeformConv", x, w, offset, pads=[1, 1, 1, 1])
    assert out.shape[:2] == ("N", 8) and out.shape[2:] == ("H", "W")
