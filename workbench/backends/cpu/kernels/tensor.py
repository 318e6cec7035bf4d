"""Data movement kernels: Transpose, Concat, Split, Slice, Tile, Pad, DepthToSpace, SpaceToDepth,
Trilu, CenterCropPad, ReverseSequence."""
from __future__ import annotations

import numpy as np

from ....ir.opdefs.tensor import split_sizes
from ....ir.ops import Info
from ..registry import kernel


@kernel("Transpose")
def transpose(x, *, perm=None):
    return np.transpose(x, perm)


@kernel("Concat")
def concat(*inputs, axis):
    return np.concatenate([x for x in inputs if x is not None], axis=axis)


@kernel("Split")
def split(x, split_input=None, *, axis=0, num_outputs=None, split=None, _num_outputs=None):
    sizes_info = None if split_input is None else Info("int64", split_input.shape, split_input)
    sizes = split_sizes(x.shape[axis], sizes_info, split, num_outputs, _num_outputs)
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


@kernel("Slice")
def slice_(data, starts_input=None, ends_input=None, axes_input=None, steps_input=None, *,
           starts=None, ends=None, axes=None):
    if starts_input is not None:  # opset >= 10 passes inputs, older opsets attributes
        starts, ends, axes = starts_input, ends_input, axes_input
    starts, ends = [int(s) for s in starts], [int(e) for e in ends]
    axes = range(len(starts)) if axes is None else [int(a) for a in axes]
    steps = [1] * len(starts) if steps_input is None else [int(s) for s in steps_input]
    index = [slice(None)] * data.ndim
    for a, start, end, step in zip(axes, starts, ends, steps):
        # Python slices clamp out-of-range bounds exactly as ONNX specifies
        index[a] = slice(start, end, step)
    return data[tuple(index)]


@kernel("Tile")
def tile(x, repeats):
    return np.tile(x, [int(r) for r in repeats])


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@kernel("Pad")
def pad(data, pads_input=None, constant_value=None, axes_input=None, *, mode="constant", pads=None,
        value=0.0, paddings=None):
    amounts = [int(p) for p in (pads_input if pads_input is not None else pads or paddings)]
    axes = range(data.ndim) if axes_input is None else [int(a) % data.ndim for a in axes_input]
    widths = [[0, 0] for _ in range(data.ndim)]
    for i, a in enumerate(axes):
        widths[a] = [amounts[i], amounts[i + len(axes)]]
    # negative pads crop: cut first, then pad what remains with the positive amounts
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for (b, e), d in zip(widths, data.shape))
    data = data[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":
        fill = value if constant_value is None or constant_value.size == 0 else constant_value.reshape(-1)[0]
        return np.pad(data, widths, mode="constant", constant_values=np.asarray(fill).astype(data.dtype))
    return np.pad(data, widths, mode=_PAD_MODES[mode])


@kernel("DepthToSpace")
def depth_to_space(x, *, blocksize, mode="DCR"):
    n, c, h, w = x.shape
    b = blocksize
    if mode == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (b * b), h * b, w * b)


@kernel("SpaceToDepth")
def space_to_depth(x, *, blocksize, mode="DCR"):
    n, c, h, w = x.shape
    b = blocksize
    y = x.reshape(n, c, h // b, b, w // b, b)
    y = y.transpose(0, 3, 5, 1, 2, 4) if mode == "DCR" else y.transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


@kernel("Trilu")
def trilu(x, k=None, *, upper=1):
    k = 0 if k is None else int(np.ravel(k)[0])
    return np.triu(x, k) if upper else np.tril(x, k)


@kernel("ReverseSequence")
def reverse_sequence(x, sequence_lens, *, batch_axis=1, time_axis=0):
    steps, lens = np.arange(x.shape[time_axis])[:, None], np.asarray(sequence_lens, np.int64)[None, :]
    index = np.where(steps < lens, lens - 1 - steps, steps)  # (time, batch)
    if batch_axis < time_axis:
        index = index.T
    view = [1] * x.ndim
    view[time_axis], view[batch_axis] = x.shape[time_axis], x.shape[batch_axis]
    index = np.broadcast_to(index.reshape(view), x.shape)
    return np.take_along_axis(x, index, axis=time_axis)


@kernel("CenterCropPad")
def center_crop_pad(x, shape, *, axes=None):
    axes = range(x.ndim) if axes is None else [a % x.ndim for a in axes]
    out_shape, src, dst = list(x.shape), [slice(None)] * x.ndim, [slice(None)] * x.ndim
    for a, size in zip(axes, (int(s) for s in shape)):
        dim = x.shape[a]
        out_shape[a] = size
        # crop keeps the centre (extra element dropped at the end); pad centres likewise
        if size < dim:
            start = (dim - size) // 2
            src[a] = slice(start, start + size)
        elif size > dim:
            start = (size - dim) // 2
            dst[a] = slice(start, start + dim)
    out = np.zeros(out_shape, dtype=x.dtype)
    out[tuple(dst)] = x[tuple(src)]
    return out
