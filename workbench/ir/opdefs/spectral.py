"""Shape rules of spectral ops: DFT, STFT, the window generators and MelWeightMatrix.

Complex tensors are real tensors with a trailing dim of 2 (real, imaginary); a real signal may
have a trailing dim of 1.
"""
from __future__ import annotations

from .. import dims
from ...errors import ShapeError
from ..onnx_dtypes import dtype_name
from ..ops import Info, op
from ..rules import symbolic_value

DFT_AXIS_INPUT_OPSET = 20  # DFT's axis became an input (default -2); before, an attribute (default 1)


def scalar_dim(info: Info | None, prefix: str):
    """The value of a scalar int input as a Dim (a fresh one when unknown); None when omitted."""
    if info is None:
        return None
    value = symbolic_value(info)
    return value[0] if value is not None and len(value) == 1 else dims.fresh(prefix)


def dft_axis(axis_input, axis_attr, opset: int, rank: int) -> int:
    """The normalized DFT axis: the input's value (opset >= 20), else the attribute, else the opset's
    default (1 before opset 20, -2 from it)."""
    if axis_input is not None:
        axis = int(axis_input)
    elif axis_attr is not None:
        axis = int(axis_attr)
    else:
        axis = -2 if opset >= DFT_AXIS_INPUT_OPSET else 1
    if not -rank <= axis < rank or axis % rank == rank - 1:
        raise ShapeError(f"DFT: axis {axis} does not name a signal dim of a rank-{rank} input "
                         "(the last dim holds real and imaginary parts)")
    return axis % rank


def dft_length_out(n, dft_length, inverse: int, onesided: int):
    """(length of the transformed axis, trailing dim) of DFT's output."""
    if inverse and onesided:  # one-sided spectrum -> real signal
        return (dft_length if dft_length is not None else dims.mul(2, dims.sub(n, 1))), 1
    length = dft_length if dft_length is not None else n
    return (dims.add(dims.floordiv(length, 2), 1) if onesided else length), 2


@op("DFT", since=17, axis=None, inverse=0, onesided=0, _opset=DFT_AXIS_INPUT_OPSET)
def dft(x, dft_length=None, axis_input=None, *, axis, inverse, onesided, _opset):
    """The discrete Fourier transform along one axis; output is complex (..., 2), or real (..., 1)
    for an inverse one-sided (irfft) transform."""
    if x.shape is None:
        return Info(x.dtype, None)
    if x.shape[-1] not in (1, 2) and isinstance(x.shape[-1], int):
        raise ShapeError(f"DFT: the last dim must be 1 (real) or 2 (complex), got shape {x.shape}")
    axis_value = scalar_dim(axis_input, "dft")
    if axis_value is not None and not isinstance(axis_value, int):  # an axis known only at run time
        return Info(x.dtype, tuple(dims.fresh("dft") for _ in x.shape[:-1]) + (1 if inverse and onesided else 2,))
    a = dft_axis(axis_value, axis, _opset, len(x.shape))
    length, last = dft_length_out(x.shape[a], scalar_dim(dft_length, "dft"), inverse, onesided)
    shape = list(x.shape)
    shape[a], shape[-1] = length, last
    return Info(x.dtype, tuple(shape))


@op("STFT", since=17, onesided=1)
def stft(signal, frame_step, window=None, frame_length=None, *, onesided):
    """(batch, frames, bins, 2): frames = 1 + (length - frame_length) // frame_step."""
    if signal.shape is None:
        return Info(signal.dtype, None)
    if len(signal.shape) != 3:
        raise ShapeError(f"STFT: the signal must be (batch, length, 1|2), got shape {signal.shape}")
    n = scalar_dim(frame_length, "stft")
    if n is None:
        n = window.shape[0] if window is not None and window.shape is not None else signal.shape[1]
    step = scalar_dim(frame_step, "stft")
    frames = dims.add(dims.floordiv(dims.sub(signal.shape[1], n), step), 1)
    bins = dims.add(dims.floordiv(n, 2), 1) if onesided else n
    return Info(signal.dtype, (signal.shape[0], frames, bins, 2))


def window_rule(size, *, output_datatype, periodic):
    """A 1-D window of `size` samples, dtype from output_datatype (float32 by default)."""
    return Info(dtype_name(output_datatype, "window output_datatype"), (scalar_dim(size, "window"),))


for _name in ("HannWindow", "HammingWindow", "BlackmanWindow"):
    op(_name, since=17, output_datatype=1, periodic=1)(window_rule)


@op("MelWeightMatrix", since=17, output_datatype=1)
def mel_weight_matrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, *,
                      output_datatype):
    """(dft_length // 2 + 1, num_mel_bins) triangular filter weights."""
    bins = dims.add(dims.floordiv(scalar_dim(dft_length, "mel"), 2), 1)
    return Info(dtype_name(output_datatype, "MelWeightMatrix output_datatype"),
                (bins, scalar_dim(num_mel_bins, "mel")))
