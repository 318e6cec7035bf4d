"""Dropout, Det and Col2Im kernels vs onnx.reference."""
import numpy as np
import pytest

from tests.oracle import check, ours, rand


@pytest.mark.parametrize("n_out", [1, 2])
def test_dropout_inference_is_identity_with_all_true_mask(n_out):
    check("Dropout", [rand(3, 4), np.array(0.3, np.float32)], n_out=n_out)
    check("Dropout", [rand(3, 4), np.array(0.3, np.float32), np.array(False)], n_out=n_out)


def test_dropout_training_seeded_like_reference():
    inputs = [rand(3, 4), np.array(0.4, np.float32), np.array(True)]
    check("Dropout", inputs, {"seed": 3}, n_out=2)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (1,) * 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_det(shape, dtype):
    check("Det", [rand(*shape, dtype=dtype)], rtol=1e-4, atol=1e-5)


def test_det_half_precision_rounds_a_float32_result():
    x = rand(2, 3, 3, dtype="float16")
    (got,) = ours("Det", [x])
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, np.linalg.det(x.astype(np.float32)), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("image,block,attrs", [
    ((5, 5), (1, 5), {}), ((5, 5), (2, 2), {}), ((6, 5), (2, 3), {"strides": [2, 1]}),
    ((5, 6), (2, 2), {"dilations": [2, 1], "pads": [1, 0, 1, 2]}), ((3, 4, 3), (2, 2, 1), {})])
def test_col2im(image, block, attrs):
    nd = len(image)
    pads, dil = attrs.get("pads", [0] * 2 * nd), attrs.get("dilations", [1] * nd)
    strides = attrs.get("strides", [1] * nd)
    blocks = [(image[i] + pads[i] + pads[i + nd] - dil[i] * (block[i] - 1) - 1) // strides[i] + 1 for i in range(nd)]
    x = rand(2, 2 * int(np.prod(block)), int(np.prod(blocks)))
    check("Col2Im", [x, np.array(image, np.int64), np.array(block, np.int64)], attrs, rtol=1e-5, atol=1e-5)
