"""AffineGrid and GridSample kernels vs onnx.reference."""
import numpy as np
import pytest

from tests.oracle import check, ours, rand


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_2d(mode, padding_mode, align_corners):
    x, grid = rand(2, 3, 4, 5), rand(2, 3, 4, 2, low=-1.6, high=1.6)
    check("GridSample", [x, grid], {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners},
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflection"])
def test_grid_sample_3d_and_float64(mode, padding_mode):
    x, grid = rand(1, 2, 3, 4, 3, dtype="float64"), rand(1, 2, 3, 2, 3, dtype="float64", low=-1.4, high=1.4)
    check("GridSample", [x, grid], {"mode": mode, "padding_mode": padding_mode}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("old,new", [("bilinear", "linear"), ("bicubic", "cubic")])
def test_grid_sample_opset16_mode_names_mean_the_same(old, new):
    x, grid = rand(1, 2, 4, 4), rand(1, 3, 3, 2)
    np.testing.assert_array_equal(ours("GridSample", [x, grid], {"mode": old})[0],
                                  ours("GridSample", [x, grid], {"mode": new})[0])


@pytest.mark.parametrize("size", [(2, 3, 4, 5), (2, 1, 3, 4, 2), (2, 1, 1, 3)])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_affine_grid(size, align_corners):
    nd = len(size) - 2
    theta = rand(2, nd, nd + 1)
    check("AffineGrid", [theta, np.array(size, np.int64)], {"align_corners": align_corners}, rtol=1e-5, atol=1e-6)
