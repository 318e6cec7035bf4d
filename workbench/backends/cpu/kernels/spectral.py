"""NumPy kernels of DFT, STFT, HannWindow, HammingWindow, BlackmanWindow and MelWeightMatrix.

Complex values travel as real tensors with a trailing (real, imaginary) dim; np.fft does the
transforms in the input's precision (single for float32 and narrower) and results are cast back.
"""
from __future__ import annotations

import numpy as np

from ....ir.onnx_dtypes import numpy_dtype
from ....ir.opdefs.spectral import DFT_AXIS_INPUT_OPSET, dft_axis
from ..registry import kernel


def to_complex(x: np.ndarray) -> np.ndarray:
    """(..., 1) real or (..., 2) real/imaginary pairs -> complex (...): complex64 for float32 and
    narrower (np.fft keeps single precision, as onnx.reference's transforms do), else complex128."""
    x = x.astype(np.float32 if x.dtype.itemsize <= 4 else np.float64)
    return x[..., 0] if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1]


def to_pairs(c: np.ndarray, dtype) -> np.ndarray:
    """complex (...) -> (..., 2) real/imaginary pairs of `dtype`."""
    return np.stack([c.real, c.imag], axis=-1).astype(dtype)


def _scalar(x) -> int | None:
    return None if x is None else int(np.asarray(x).reshape(-1)[0])


@kernel("DFT")
def dft(x, dft_length=None, axis_input=None, *, axis=None, inverse=0, onesided=0, _opset=DFT_AXIS_INPUT_OPSET):
    """Forward or inverse DFT along one axis; forward one-sided keeps n // 2 + 1 frequencies, inverse
    one-sided (irfft) turns a one-sided spectrum into a real signal (..., 1)."""
    a = dft_axis(_scalar(axis_input), axis, _opset, x.ndim)
    signal = to_complex(x)
    n = _scalar(dft_length)
    if inverse and onesided:
        n = n if n is not None else 2 * (x.shape[a] - 1)
        return np.fft.irfft(signal, n=n, axis=a)[..., None].astype(x.dtype)
    n = n if n is not None else x.shape[a]
    if inverse:
        return to_pairs(np.fft.ifft(signal, n=n, axis=a), x.dtype)
    out = np.fft.fft(signal, n=n, axis=a)
    if onesided:
        out = np.take(out, np.arange(n // 2 + 1), axis=a)
    return to_pairs(out, x.dtype)


@kernel("STFT")
def stft(signal, frame_step, window=None, frame_length=None, *, onesided=1):
    """Windowed DFTs of frames of `frame_length` samples taken every `frame_step` samples."""
    sig = to_complex(signal)  # (batch, length)
    n = _scalar(frame_length)
    if n is None:
        n = window.shape[0] if window is not None else sig.shape[1]
    width = window.shape[0] if window is not None else n
    step = _scalar(frame_step)
    frames = 1 + (sig.shape[1] - n) // step
    starts = np.arange(frames)[:, None] * step
    taps = np.arange(width)[None, :]
    segments = np.where(starts + taps < sig.shape[1], sig[:, np.minimum(starts + taps, sig.shape[1] - 1)], 0)
    if window is not None:
        segments = segments * window.astype(segments.real.dtype)
    out = np.fft.fft(segments, n=n, axis=-1)
    return to_pairs(out[..., :n // 2 + 1] if onesided else out, signal.dtype)


def _window(cosines):
    """A window kernel: w[k] = sum_j c_j cos(2 pi j k / N), N = size (periodic) or size - 1."""

    def run(size, *, output_datatype=1, periodic=1):
        n = _scalar(size)
        k = np.arange(n, dtype=np.float64)
        period = n if periodic else n - 1
        w = sum(c * np.cos(2 * np.pi * j * k / period) for j, c in enumerate(cosines))
        return np.asarray(w).astype(numpy_dtype(output_datatype, "window output_datatype"))

    return run


_HAMMING_ALPHA = 25 / 46  # ONNX's (and PyTorch's) exact form of 0.54
kernel("HannWindow")(_window([0.5, -0.5]))  # sin^2(pi k / N) = (1 - cos(2 pi k / N)) / 2
kernel("HammingWindow")(_window([_HAMMING_ALPHA, _HAMMING_ALPHA - 1]))
kernel("BlackmanWindow")(_window([0.42, -0.5, 0.08]))


def mel_band_edges(num_mel_bins: int, dft_length: int, sample_rate, lower, upper) -> np.ndarray:
    """Spectrogram bin of each of the num_mel_bins + 2 band edges, equally spaced in mel, exactly as
    onnx.reference rounds them (the steps and dtypes matter: bins are floored)."""
    edges = np.arange(0, num_mel_bins + 2)
    low_mel = 2595 * np.log1p(lower / 700) / np.log(10)
    high_mel = 2595 * np.log1p(upper / 700) / np.log(10)
    step = (high_mel - low_mel) / edges.shape[0]
    hertz = 700 * np.expm1((edges * step + low_mel) / 2595 * np.log(10))
    return (((dft_length + 1) * hertz) // sample_rate).astype(int)


@kernel("MelWeightMatrix")
def mel_weight_matrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, *,
                      output_datatype=1):
    """(dft_length // 2 + 1, num_mel_bins): triangles rising from a band's lower edge to its center
    and falling to its upper edge."""
    mels, length = _scalar(num_mel_bins), _scalar(dft_length)
    rate = np.asarray(sample_rate).reshape(-1)[0]
    lower, upper = (np.asarray(v).reshape(-1)[0] for v in (lower_edge_hertz, upper_edge_hertz))
    edges = mel_band_edges(mels, length, rate, lower, upper)
    low, center, high = edges[:-2], edges[1:-1], edges[2:]
    j = np.arange(length // 2 + 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = np.where(center > low, (j - low) / (center - low), 1.0)
        falling = (high - j) / (high - center)
    out = np.where((j >= center) & (j < high), falling, np.where((j >= low) & (j <= center), rising, 0.0))
    return out.astype(numpy_dtype(output_datatype, "MelWeightMatrix output_datatype"))
