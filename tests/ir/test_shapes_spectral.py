"""Shape rules of DFT, STFT, windows and MelWeightMatrix, with symbolic dims."""
import numpy as np
import pytest

from tests.ir.shapecheck import infer
from workbench.errors import ShapeError
from workbench.ir import dims
from workbench.ir.ops import Info

X = Info("float32", ("B", "N", "M", 1))
AXIS1 = Info("int64", (), np.array(1))


BIND = {"B": 2, "N": 9, "M": 3}


@pytest.mark.parametrize("attrs,length,want", [
    ({}, None, (2, 9, 3, 2)),
    ({"onesided": 1}, None, (2, 5, 3, 2)),
    ({"onesided": 1}, Info("int64", (), np.array(10)), (2, 6, 3, 2)),
    ({"inverse": 1, "onesided": 1}, None, (2, 16, 3, 1)),
])
def test_dft_output_shape(attrs, length, want):
    (out,) = infer("DFT", X, length, AXIS1, **attrs)
    assert out.dtype == "float32" and dims.substitute(out.shape, BIND) == want


def test_dft_axis_default_depends_on_opset():
    assert infer("DFT", X, _opset=17)[0].shape == ("B", "N", "M", 2)
    assert infer("DFT", Info("float32", ("B", "N", 3, 1)), None, None, onesided=1, _opset=20)[0].shape == \
        ("B", "N", 2, 2)


@pytest.mark.parametrize("axis", [3, -1, 4])
def test_dft_rejects_the_last_axis(axis):
    with pytest.raises(ShapeError):
        infer("DFT", X, None, Info("int64", (), np.array(axis)))


def test_stft_frames_and_bins():
    (out,) = infer("STFT", Info("float32", ("B", "L", 1)), Info("int64", (), np.array(4)), None,
                   Info("int64", (), np.array(16)))
    assert out.shape[0] == "B" and out.shape[2:] == (9, 2)
    assert dims.substitute(out.shape, {"B": 1, "L": 40}) == (1, 7, 9, 2)


def test_windows_and_mel_take_their_sizes_and_dtype():
    assert infer("HannWindow", Info("int32", (), np.array(7)), output_datatype=11) == [Info("float64", (7,))]
    mel = infer("MelWeightMatrix", *(Info("int64", (), np.array(v)) for v in (8, 16, 8000, 0, 4000)))
    assert mel == [Info("float32", (9, 8))]
