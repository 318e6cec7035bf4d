import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference

WINDOWS = [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[2, 3], pads=[1, 0, 0, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[3, 3], pads=[1, 1, 1, 1], ceil_mode=1),
    dict(kernel_shape=[2, 2], auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(kernel_shape=[3, 3], auto_pad="SAME_LOWER"),
    dict(kernel_shape=[2, 2], dilations=[2, 2], strides=[1, 2]),
    dict(kernel_shape=[2, 2], dilations=[2, 1], ceil_mode=1, strides=[2, 2]),
]


def _assert_indices_point_at_maxima(x, attrs):
    """Indices must address, in X, the maximum each window reported (flat, N and C included).

    (onnx.reference's indices are wrong for asymmetric pads and ceil_mode, so they are not the oracle.)
    """
    y, idx = ours("MaxPool", [x], attrs)
    np.testing.assert_array_equal(x.reshape(-1)[idx], y)
    per_image = np.prod(x.shape[2:])
    channel = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[0], x.shape[1], *(1,) * (x.ndim - 2))
    assert np.all(idx // per_image == channel)


@pytest.mark.parametrize("attrs", WINDOWS)
def test_maxpool_values_and_indices(attrs):
    x = rand(2, 2, 7, 8)
    check("MaxPool", [x], attrs)
    _assert_indices_point_at_maxima(x, attrs)


def test_maxpool_indices_match_reference_for_symmetric_pads():
    check("MaxPool", [rand(2, 2, 7, 8)], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]), n_out=2)


@pytest.mark.parametrize("attrs", WINDOWS)
@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool(attrs, include_pad):
    check("AveragePool", [rand(1, 2, 7, 8)], dict(count_include_pad=include_pad, **attrs))


def test_maxpool_column_major_indices_and_1d_3d():
    check("MaxPool", [rand(2, 3, 6, 5)], dict(kernel_shape=[2, 2], strides=[2, 1], storage_order=1), n_out=2)
    x1 = rand(2, 3, 9)
    check("MaxPool", [x1], dict(kernel_shape=[3], strides=[2]), n_out=2)
    _assert_indices_point_at_maxima(x1, dict(kernel_shape=[3], strides=[2], pads=[1, 1]))
    x3 = rand(1, 2, 4, 5, 4)
    check("MaxPool", [x3], dict(kernel_shape=[2, 3, 2], strides=[1, 2, 1]), n_out=2)
    _assert_indices_point_at_maxima(x3, dict(kernel_shape=[2, 3, 2], pads=[0, 1, 0, 1, 1, 1]))
    check("AveragePool", [rand(1, 2, 4, 5, 4)], dict(kernel_shape=[2, 3, 2], pads=[0, 1, 0, 1, 1, 1]))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "float16", "float64"])
def test_maxpool_dtypes_pad_with_the_lowest_value(dtype):
    # (onnx.reference cannot pad integer inputs: compare values with its float64 result)
    x = (rand(1, 2, 5, 5, low=-100, high=100)).astype(dtype)
    attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    want = reference("MaxPool", [x.astype(np.float64)], attrs)[0]
    got = ours("MaxPool", [x], attrs)[0]
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got.astype(np.float64), want)
    _assert_indices_point_at_maxima(x, attrs)


def test_maxpool_without_indices_returns_only_values():
    x = rand(1, 2, 6, 6)
    y = ours("MaxPool", [x], dict(kernel_shape=[2, 2], _indices=0))
    assert len(y) == 1 and y[0].shape == (1, 2, 5, 5)


def test_maxpool_first_maximum_wins_on_ties():
    x = np.ones((1, 1, 3, 3), np.float32)
    _, idx = ours("MaxPool", [x], dict(kernel_shape=[2, 2]))
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [3, 4]])


@pytest.mark.parametrize("attrs", [dict(kernel_shape=[2, 2], p=3), dict(kernel_shape=[3, 2], p=2, strides=[2, 1]),
                                   dict(kernel_shape=[2, 2], p=1, dilations=[2, 2])])
def test_lp_pool_without_padding(attrs):
    check("LpPool", [rand(1, 2, 6, 7)], attrs, rtol=1e-4)


def test_lp_pool_padding_contributes_zeros():
    # onnx.reference rescales padded windows; ONNX (and onnxruntime) sum the real cells only
    x = rand(1, 1, 4, 4)
    y = ours("LpPool", [x], dict(kernel_shape=[3, 3], p=2, pads=[1, 1, 1, 1]))[0]
    padded = np.pad(x[0, 0], 1)
    want = [[np.sqrt((padded[i:i + 3, j:j + 3] ** 2).sum()) for j in range(4)] for i in range(4)]
    np.testing.assert_allclose(y[0, 0], want, rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 5)])
def test_global_average_pool(shape):
    check("GlobalAveragePool", [rand(*shape)])


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 5)])
def test_global_max_pool(shape):
    x = rand(*shape)
    y = ours("GlobalMaxPool", [x])[0]  # onnx.reference gets non-4-D shapes wrong
    np.testing.assert_array_equal(y, x.max(axis=tuple(range(2, x.ndim)), keepdims=True))


def test_global_lp_pool():
    x = rand(2, 3, 4, 5)
    y = ours("GlobalLpPool", [x], dict(p=3))[0]
    np.testing.assert_allclose(y[..., 0, 0], (np.abs(x) ** 3).sum(axis=(2, 3)) ** (1 / 3), rtol=1e-5)


def test_average_pool_float16_is_computed_in_float32():
    x = rand(1, 2, 6, 6)
    y = ours("AveragePool", [x.astype(np.float16)], dict(kernel_shape=[3, 3]))[0]
    want = ours("AveragePool", [x.astype(np.float16).astype(np.float32)], dict(kernel_shape=[3, 3]))[0]
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, want.astype(np.float16))
