"""Shape rules of NonMaxSuppression, RoiAlign and MaxUnpool, with symbolic dims."""
import numpy as np
import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir import dims
from workbench.ir.ops import Info


def test_nms_rows_are_unknown_triples():
    (out,) = infer("NonMaxSuppression", Info("float32", ("B", "N", 4)), Info("float32", ("B", 2, "N")))
    assert out.dtype == "int64" and out.shape[1] == 3 and isinstance(out.shape[0], str)
    with pytest.raises(ShapeError):
        infer("NonMaxSuppression", Info("float32", ("B", "N", 5)), Info("float32", ("B", 2, "N")))


def test_roi_align_shape():
    out = agrees("RoiAlign", [rand(1, 3, 8, 8), rand(5, 4, low=0, high=6), np.zeros(5, np.int64)],
                 [("N", 3, "H", "W"), ("R", 4), ("R",)], {"N": 1, "H": 8, "W": 8, "R": 5},
                 output_height=2, output_width=3)
    assert out[0].shape == ("R", 3, 2, 3)
    with pytest.raises(ShapeError):
        infer("RoiAlign", Info("float32", ("N", 3, 8, 8)), Info("float32", ("R", 4)), Info("int64", ("R",)),
              mode="median")


def test_max_unpool_shape_symbolic_and_explicit():
    (out,) = infer("MaxUnpool", Info("float32", ("N", 3, "H", 5)), Info("int64", ("N", 3, "H", 5)),
                   kernel_shape=[2, 2], strides=[2, 2], pads=[0, 1, 0, 1])
    assert dims.substitute(out.shape, {"N": 1, "H": 4}) == (1, 3, 8, 8)
    given = Info("int64", (4,), ("N", 3, 9, 9))
    assert infer("MaxUnpool", Info("float32", ("N", 3, 4, 4)), Info("int64", ("N", 3, 4, 4)), given,
                 kernel_shape=[2, 2])[0].shape == ("N", 3, 9, 9)
