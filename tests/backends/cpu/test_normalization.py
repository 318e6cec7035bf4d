import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3), (1, 4, 6)])
def test_batchnorm_inference(shape):
    c = shape[1]
    check("BatchNormalization", [rand(*shape), rand(c), rand(c), rand(c), rand(c, low=0.5, high=2)],
          dict(epsilon=1e-3), rtol=1e-5, atol=1e-5)


def test_batchnorm_training_mode_running_statistics():
    x, c = rand(4, 3, 5, 5), 3
    check("BatchNormalization", [x, rand(c), rand(c), rand(c), rand(c, low=0.5, high=2)],
          dict(training_mode=1, momentum=0.8), n_out=3, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layernorm_with_statistics(axis, with_bias):
    x = rand(2, 3, 8)
    norm_shape = x.shape[axis % 3:]
    inputs = [x, rand(*norm_shape), rand(*norm_shape) if with_bias else None]
    check("LayerNormalization", inputs, dict(axis=axis, epsilon=1e-4), n_out=3, rtol=1e-4, atol=1e-5)


def test_layernorm_float16_keeps_float32_statistics():
    x = rand(2, 16).astype(np.float16)
    y, mean, inv = ours("LayerNormalization", [x, np.ones(16, np.float16), None])
    assert y.dtype == np.float16 and mean.dtype == inv.dtype == np.float32
    want = reference("LayerNormalization", [x.astype(np.float32), np.ones(16, np.float32)], n_out=3)
    np.testing.assert_allclose(mean, want[1], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(y, want[0], rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_rms_normalization(axis):
    x = rand(2, 3, 6)
    check("RMSNormalization", [x, rand(*x.shape[axis % 3:])], dict(axis=axis, epsilon=1e-3), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (2, 3, 7)])
def test_instance_normalization(shape):
    check("InstanceNormalization", [rand(*shape), rand(shape[1]), rand(shape[1])], dict(epsilon=1e-3),
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_normalization_opset21_per_channel(groups):
    x = rand(2, 6, 3, 4)
    check("GroupNormalization", [x, rand(6), rand(6)], dict(num_groups=groups, epsilon=1e-3), rtol=1e-4, atol=1e-5)


def test_group_normalization_opset18_per_group():
    x, scale, bias = rand(2, 6, 3, 4), rand(3), rand(3)
    want = reference("GroupNormalization", [x, scale, bias], dict(num_groups=3), opset=18)[0]
    got = ours("GroupNormalization", [x, scale, bias], dict(num_groups=3, _opset=18))[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_normalization(axis):
    x = rand(3, 4, 5)
    check("LpNormalization", [x], dict(p=2, axis=axis), rtol=1e-5)
    # onnx.reference sums x instead of |x| for p=1
    l1 = ours("LpNormalization", [x], dict(p=1, axis=axis))[0]
    np.testing.assert_allclose(l1, x / np.abs(x).sum(axis=axis, keepdims=True), rtol=1e-5)


def test_lp_normalization_zero_vector_gives_zero():
    x = np.zeros((2, 3), np.float32)
    assert not np.any(ours("LpNormalization", [x], dict(p=2))[0])


@pytest.mark.parametrize("axes", [(0, 2, 3), (1,), (2, 3)])
def test_mean_variance_normalization(axes):
    check("MeanVarianceNormalization", [rand(2, 3, 4, 5)], dict(axes=list(axes)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn(size):
    # onnx.reference loops over range(N) as if it were C: only N == C gives it right
    check("LRN", [rand(5, 5, 3, 4)], dict(size=size, alpha=1e-2, beta=0.6, bias=1.5), rtol=1e-5)


@pytest.mark.parametrize("op, extra", [("InstanceNormalization", 2), ("BatchNormalization", 4)])
def test_half_inputs_keep_their_dtype(op, extra):
    x = rand(2, 3, 4, 4)
    params = [rand(3, low=0.5, high=2) for _ in range(extra)]
    want = ours(op, [x, *params])[0]
    for dtype in ("float16", "bfloat16"):
        low = ours(op, [x.astype(dtype), *(p.astype(dtype) for p in params)])[0]
        assert low.dtype.name == dtype
        np.testing.assert_allclose(low.astype(np.float32), want, rtol=0.05, atol=0.05)
