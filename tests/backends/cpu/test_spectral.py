"""DFT, STFT, window and MelWeightMatrix kernels vs onnx.reference."""
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference


@pytest.mark.parametrize("shape,axis", [((2, 8, 1), 1), ((2, 7, 2), 1), ((3, 4, 6, 2), 2), ((3, 5, 6, 1), -3)])
@pytest.mark.parametrize("inverse,onesided", [(0, 0), (0, 1), (1, 0)])
@pytest.mark.parametrize("length", [None, 6, 12])
def test_dft_opset20(shape, axis, inverse, onesided, length):
    ins = [rand(*shape), None if length is None else np.array(length, np.int64), np.array(axis, np.int64)]
    check("DFT", ins, {"inverse": inverse, "onesided": onesided}, opset=20, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("length", [None, 10])
def test_inverse_onesided_dft_is_irfft(length):
    spectrum = rand(2, 5, 3, 2)
    ins = [spectrum, None if length is None else np.array(length, np.int64), np.array(1, np.int64)]
    check("DFT", ins, {"inverse": 1, "onesided": 1}, opset=20, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attrs", [{}, {"axis": 2, "onesided": 1}, {"axis": 1, "inverse": 1}])
def test_dft_opset17_axis_attribute_defaults_to_1(attrs):
    x = rand(2, 4, 6, 2, dtype="float64")
    (want,) = reference("DFT", [x], attrs, opset=17)
    (got,) = ours("DFT", [x], {**attrs, "_opset": 17})
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("window", [False, True])
@pytest.mark.parametrize("onesided", [0, 1])
@pytest.mark.parametrize("signal", [(2, 40, 1), (1, 33, 2)])
def test_stft(window, onesided, signal):
    ins = [rand(*signal), np.array(5, np.int64), rand(8, low=0.1, high=1) if window else None,
           None if window else np.array(8, np.int64)]
    check("STFT", ins, {"onesided": onesided}, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("dtype", [1, 11])
def test_windows(op, periodic, dtype):
    check(op, [np.array(11, np.int64)], {"periodic": periodic, "output_datatype": dtype}, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mels,length,rate,low,high", [(8, 16, 8192, 0.0, 4096.0), (10, 64, 16000, 40.0, 7600.0),
                                                       (5, 100, 22050, 300.0, 8000.0)])
def test_mel_weight_matrix(mels, length, rate, low, high):
    ins = [np.array(mels, np.int32), np.array(length, np.int32), np.array(rate, np.int32),
           np.array(low, np.float32), np.array(high, np.float32)]
    check("MelWeightMatrix", ins, rtol=1e-6, atol=1e-6)
