import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference

CONV_CASES = [
    ((2, 4, 9, 8), (6, 4, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((1, 4, 9, 8), (6, 4, 3, 2), dict(strides=[2, 1], pads=[1, 0, 2, 1])),
    ((1, 4, 11, 10), (5, 4, 3, 3), dict(dilations=[2, 3], pads=[2, 1, 0, 3])),
    ((2, 4, 9, 8), (6, 4, 2, 3), dict(auto_pad="SAME_UPPER", strides=[2, 3])),
    ((2, 4, 9, 8), (6, 4, 2, 3), dict(auto_pad="SAME_LOWER", strides=[3, 2])),
    ((2, 4, 9, 8), (6, 4, 3, 3), dict(auto_pad="VALID", strides=[2, 2])),
    ((2, 4, 9, 8), (6, 2, 3, 3), dict(group=2, pads=[1, 1, 1, 1])),
    ((2, 6, 9, 8), (6, 1, 3, 3), dict(group=6, pads=[1, 1, 1, 1])),  # depthwise, stride 1
    ((2, 6, 9, 8), (12, 1, 3, 3), dict(group=6, strides=[2, 2], pads=[1, 0, 1, 0])),  # multiplier 2
    ((1, 4, 9, 8), (4, 1, 3, 3), dict(group=4, dilations=[2, 1], pads=[2, 2, 2, 2])),
    ((2, 8, 7, 6), (5, 8, 1, 1), {}),  # pointwise
    ((2, 8, 7, 6), (6, 4, 1, 1), dict(group=2, strides=[2, 2])),
    ((2, 3, 10), (4, 3, 3), dict(pads=[1, 2], strides=[2])),  # 1-D
    ((1, 2, 5, 6, 7), (3, 2, 3, 2, 3), dict(pads=[1, 0, 1, 1, 1, 0])),  # 3-D
    ((1, 4, 5, 6, 7), (8, 1, 3, 3, 3), dict(group=4, pads=[1] * 6)),  # 3-D depthwise
]


@pytest.mark.parametrize("xs, ws, attrs", CONV_CASES)
def test_conv_matches_reference(xs, ws, attrs):
    check("Conv", [rand(*xs), rand(*ws), rand(ws[0])], attrs, rtol=1e-4, atol=1e-4)


def test_conv_without_bias_float64():
    check("Conv", [rand(1, 3, 6, 6, dtype="float64"), rand(2, 3, 3, 3, dtype="float64")],
          dict(pads=[1, 1, 1, 1]), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_conv_low_precision_computes_in_float32(dtype):
    x, w = rand(1, 4, 6, 6), rand(3, 4, 3, 3)
    want = ours("Conv", [x, w], dict(pads=[1, 1, 1, 1]))[0]
    got = ours("Conv", [x.astype(dtype), w.astype(dtype)], dict(pads=[1, 1, 1, 1]))[0]
    assert got.dtype == np.dtype(getattr(ml_dtypes, dtype, dtype))
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=0.05, atol=0.1)


def test_conv_large_batch_is_built_in_chunks(monkeypatch):
    from workbench.backends.cpu.kernels import conv
    monkeypatch.setattr(conv, "_COLS_BYTES", 1000)  # forces one image per chunk
    check("Conv", [rand(3, 4, 6, 6), rand(5, 4, 3, 3)], dict(pads=[1, 1, 1, 1]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs, ws, attrs", [
    ((1, 3, 4, 5), (3, 2, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1])),
    ((2, 3, 4, 5), (3, 2, 3, 3), dict(strides=[3, 2], output_padding=[1, 1])),
    ((1, 4, 4, 5), (4, 2, 3, 3), dict(dilations=[2, 2])),
    ((1, 3, 4, 5), (3, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 3, 4, 5), (3, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ((1, 3, 4, 5), (3, 2, 3, 3), dict(strides=[3, 2], output_shape=[12, 11])),
    ((1, 3, 6), (3, 2, 4), dict(strides=[2], pads=[1, 1])),
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), dict(strides=[2, 1, 2])),
])
def test_conv_transpose_matches_reference(xs, ws, attrs):
    check("ConvTranspose", [rand(*xs), rand(*ws), rand(ws[1] * attrs.get("group", 1))], attrs,
          rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("attrs", [dict(strides=[2, 2], pads=[1, 0, 1, 1]), dict(dilations=[2, 1])])
def test_grouped_conv_transpose_is_the_concatenation_of_its_groups(attrs):
    # onnx.reference mishandles groups with several output channels each, so compare per group
    x, w, b = rand(2, 6, 4, 5), rand(6, 2, 3, 3), rand(6)
    want = np.concatenate([reference("ConvTranspose", [x[:, 2 * g:2 * g + 2], w[2 * g:2 * g + 2], b[2 * g:2 * g + 2]],
                                     attrs)[0] for g in range(3)], axis=1)
    got = ours("ConvTranspose", [x, w, b], dict(group=3, **attrs))[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_dtype, w_dtype", [("uint8", "uint8"), ("int8", "int8"), ("uint8", "int8")])
def test_conv_integer_matches_reference(x_dtype, w_dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 100, (1, 3, 6, 5)).astype(x_dtype)
    w = rng.integers(0, 50, (4, 3, 3, 3)).astype(w_dtype)
    check("ConvInteger", [x, w, np.array(7, x_dtype), np.arange(4).astype(w_dtype)], dict(pads=[1, 1, 1, 1]))


@pytest.mark.parametrize("out_dtype", ["uint8", "int8"])
def test_qlinear_conv_per_channel_matches_reference(out_dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (1, 3, 6, 5)).astype(np.uint8)
    w = rng.integers(-60, 60, (4, 3, 3, 3)).astype(np.int8)
    inputs = [x, np.float32(0.02), np.uint8(120), w, np.float32([0.01, 0.02, 0.03, 0.015]), np.int8([0, 0, 0, 0]),
              np.float32(0.3), np.array(10, out_dtype), rng.integers(-500, 500, 4).astype(np.int32)]
    check("QLinearConv", [np.asarray(a) for a in inputs], dict(pads=[1, 1, 1, 1], strides=[2, 1]))


@pytest.mark.parametrize("attrs,groups", [({}, (1, 1)), ({"pads": [1, 0, 1, 1], "strides": [2, 1]}, (1, 2)),
                                          ({"dilations": [2, 1], "group": 2}, (2, 1)),
                                          ({"group": 2, "offset_group": 2, "pads": [1, 1, 1, 1]}, (2, 2))])
@pytest.mark.parametrize("with_mask", [False, True])
def test_deform_conv(attrs, groups, with_mask):
    from workbench.ir import windows

    group, offset_group = groups
    attrs = {**attrs, "offset_group": offset_group} if offset_group > 1 else attrs
    x, w, b = rand(1, 4, 5, 6), rand(4, 4 // group, 2, 3), rand(4)
    win = windows.window((2, 3), attrs.get("strides"), attrs.get("dilations"), attrs.get("pads"))
    oh, ow = windows.out_dims((5, 6), win)
    offset = rand(1, offset_group * 6 * 2, oh, ow, low=-1.5, high=1.5)
    mask = rand(1, offset_group * 6, oh, ow, low=0, high=1) if with_mask else None
    check("DeformConv", [x, w, offset, b, mask], {"kernel_shape": [2, 3], **attrs}, rtol=1e-4, atol=1e-5)


def _full(attrs):
    from workbench.ir.ops import attributes, spec_for
    return attributes(spec_for("Conv"), attrs, "test")


def _methods(xs, ws, attrs):
    from workbench.backends.cpu.kernels.conv import conv_tactics
    return conv_tactics([xs, ws], _full(attrs))


def _conv(inputs, attrs, method):
    from workbench.backends.cpu.kernels.conv import conv
    return conv(*inputs, **_full(attrs), method=method)


@pytest.mark.parametrize("xs, ws, attrs", CONV_CASES + [
    ((1, 16, 7, 6), (5, 16, 3, 3), dict(pads=[1, 1, 1, 1])),  # odd and even outputs (Winograd's 2x2 tiles)
    ((2, 16, 8, 9), (5, 16, 3, 3), dict(pads=[0, 2, 1, 0])),
    ((1, 16, 6, 6), (3, 16, 3, 3), dict(auto_pad="SAME_LOWER")),
    ((2, 16, 9, 8), (4, 16, 3, 2), dict(strides=[2, 3]))])
def test_every_conv_method_matches_the_reference(xs, ws, attrs):
    inputs = [rand(*xs), rand(*ws), rand(ws[0])]
    want = reference("Conv", inputs, attrs)[0]
    for method in _methods(xs, ws, attrs):
        got = _conv(inputs, attrs, method)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=method)


@pytest.mark.parametrize("xs, ws, attrs, methods", [
    ((1, 8, 5, 5), (4, 8, 1, 1), {}, ("pointwise",)),
    ((1, 8, 5, 5), (8, 1, 3, 3), dict(group=8), ("depthwise",)),
    ((1, 16, 5, 5), (4, 16, 3, 3), {}, ("im2col", "taps", "winograd")),
    ((1, 16, 5, 5), (4, 16, 3, 3), dict(strides=[2, 2]), ("im2col", "taps")),
    ((1, 16, 5, 5), (4, 16, 3, 2), {}, ("im2col", "taps")),
    ((1, 3, 5, 5), (4, 3, 3, 3), {}, ("im2col",)),  # few channels: per-tap matmuls are no option
    ((1, 16, 5, 5), (4, 8, 3, 3), dict(group=2), ("im2col",)),
])
def test_conv_methods_that_apply(xs, ws, attrs, methods):
    assert _methods(xs, ws, attrs) == methods


def test_a_method_that_does_not_apply_is_refused():
    from workbench.errors import UnsupportedError
    with pytest.raises(UnsupportedError, match="pointwise"):
        _conv([rand(1, 8, 5, 5), rand(4, 8, 3, 3)], {}, "pointwise")


def test_weights_are_rearranged_once_per_weight_array():
    from workbench.backends.cpu.kernels import conv
    w = rand(4, 16, 3, 3)
    assert conv._packed(w, "taps") is conv._packed(w, "taps")
    np.testing.assert_array_equal(conv._packed(w, "taps")[4], w[:, :, 1, 1])
    assert conv._packed(w, "winograd").shape == (16, 1, 4, 16)
    keys = [(id(w), "taps"), (id(w), "winograd")]
    del w
    assert not any(k in conv._PACKED for k in keys)  # dropped with the weights
