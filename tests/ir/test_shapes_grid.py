"""Shape rules of AffineGrid and GridSample, with symbolic dims."""
import numpy as np
import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir.ops import Info


def test_grid_sample_takes_the_grid_spatial_dims():
    out = agrees("GridSample", [rand(2, 3, 5, 6), rand(2, 4, 7, 2)], [("N", 3, "H", "W"), ("N", "h", "w", 2)],
                 {"N": 2, "H": 5, "W": 6, "h": 4, "w": 7})
    assert out[0].shape == ("N", 3, "h", "w")


@pytest.mark.parametrize("grid,attrs", [(Info("float32", ("N", 4, 4, 3)), {}),
                                        (Info("float32", ("N", 4, 2)), {}),
                                        (Info("float32", ("N", 4, 4, 2)), {"mode": "area"}),
                                        (Info("float32", ("N", 4, 4, 2)), {"padding_mode": "wrap"})])
def test_grid_sample_rejects_bad_grids_and_modes(grid, attrs):
    with pytest.raises(ShapeError):
        infer("GridSample", Info("float32", ("N", 3, "H", "W")), grid, **attrs)


def test_affine_grid_reads_the_size_value_even_when_symbolic():
    size = Info("int64", (5,), ("N", 3, "D", "H", "W"))
    assert infer("AffineGrid", Info("float32", ("N", 3, 4)), size) == [Info("float32", ("N", "D", "H", "W", 3))]
    const = Info("int64", (4,), np.array([2, 1, 4, 5]))
    assert infer("AffineGrid", Info("float64", ("N", 2, 3)), const) == [Info("float64", ("N", 4, 5, 2))]


def test_affine_grid_unknown_size_gives_fresh_dims_of_the_right_rank():
    (out,) = infer("AffineGrid", Info("float32", ("N", 2, 3)), Info("int64", (4,)))
    assert out.shape[0] == "N" and len(out.shape) == 4 and out.shape[-1] == 2
