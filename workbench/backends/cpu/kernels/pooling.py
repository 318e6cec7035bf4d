"""Pooling kernels: a loop over kernel taps, each a whole-tensor strided slice (no per-pixel loops)."""
from __future__ import annotations


import numpy as np

from ....ir import windows
from ..registry import kernel
from ..windowing import compute_dtype, pad_spatial, tap_slices, taps


def _geometry(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, what):
    """(window with explicit pads, output dims, pads of the buffer actually read).

    With ceil_mode the last window may reach past the end padding; the buffer is padded a
    little more there, and those cells are never counted (see _counts).
    """
    win = windows.window(kernel_shape, strides, dilations, pads, what=what)
    out, pads = windows.resolve(x.shape[2:], win, auto_pad, ceil_mode, what)
    n = len(out)
    extra = [max(0, (o - 1) * s + win.extent(i) - size - pads[i] - pads[n + i])
             for i, (o, s, size) in enumerate(zip(out, win.strides, x.shape[2:]))]
    read_pads = tuple(pads[:n]) + tuple(p + e for p, e in zip(pads[n:], extra))
    return win._replace(pads=tuple(pads)), out, read_pads


def _tap_sum(xp, win, out):
    """Sum over kernel taps of the padded input (padding must be zeros)."""
    acc = None
    for tap in taps(win):
        part = xp[(Ellipsis, *tap_slices(win, tap, out))]
        acc = part.copy() if acc is None else np.add(acc, part, out=acc)
    return acc


def _counts(win, out, in_dims, include_pad):
    """How many window cells are counted per output position (separable per axis)."""
    n = len(out)
    total = np.ones((), dtype=np.float64)
    for i, (o, size) in enumerate(zip(out, in_dims)):
        pb, pe = win.pads[i], win.pads[n + i]
        pos = np.arange(o)[:, None] * win.strides[i] + np.arange(win.kernel[i])[None, :] * win.dilations[i]
        lo, hi = (0, size + pb + pe) if include_pad else (pb, pb + size)
        cnt = ((pos >= lo) & (pos < hi)).sum(axis=1)
        total = total[..., None] * cnt
    return total


def _lowest(dtype):
    return np.iinfo(dtype).min if np.issubdtype(dtype, np.integer) else -np.inf


def _tap_max(xp, win, out):
    """Max over kernel taps of the padded input (padding must be the dtype's lowest value)."""
    best = None
    for tap in taps(win):
        part = xp[(Ellipsis, *tap_slices(win, tap, out))]
        best = part.copy() if best is None else np.maximum(best, part, out=best)
    return best


def _argmax_tap(xp, win, out, best):
    """Index (in taps() order) of the first tap that reaches the maximum, per output position."""
    arg = np.zeros(best.shape, dtype=np.int32)
    hit = np.empty(best.shape, dtype=bool)
    all_taps = list(taps(win))
    for k in range(len(all_taps) - 1, -1, -1):  # backwards, so the first maximum wins
        np.equal(xp[(Ellipsis, *tap_slices(win, all_taps[k], out))], best, out=hit)
        np.copyto(arg, k, where=hit)
    return arg


def _flat_indices(arg, win, out, x_shape, storage_order):
    """Flat position in X (N and C included) of the selected tap of every window."""
    spatial = x_shape[2:]
    n = len(spatial)
    # flat multiplier of each spatial axis: row-major, or column-major when storage_order=1
    order = range(n) if storage_order else reversed(range(n))
    mult, m = [0] * n, 1
    for i in order:
        mult[i], m = m, m * spatial[i]
    tap_off = np.array([sum(t * d * mu for t, d, mu in zip(tap, win.dilations, mult)) for tap in taps(win)],
                       dtype=np.int64)
    grid = np.zeros((), dtype=np.int64)
    for i, o in enumerate(out):
        grid = grid[..., None] + (np.arange(o) * win.strides[i] - win.pads[i]) * mult[i]
    nc = (np.arange(x_shape[0] * x_shape[1], dtype=np.int64) * m).reshape(x_shape[0], x_shape[1], *(1,) * n)
    return nc + grid + tap_off[arg]


@kernel("MaxPool")
def max_pool(x, *, _indices, auto_pad, ceil_mode, dilations, kernel_shape, pads, storage_order, strides):
    """ONNX MaxPool: Y, and unless `_indices` is 0 the Indices output (flat positions in X)."""
    win, out, read_pads = _geometry(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, "MaxPool")
    xp = pad_spatial(x, read_pads, _lowest(x.dtype))
    y = _tap_max(xp, win, out)
    if not _indices:
        return y
    return y, _flat_indices(_argmax_tap(xp, win, out, y), win, out, x.shape, storage_order)


def _avg(x, win, out, read_pads, include_pad):
    ct = compute_dtype(x.dtype)
    acc = _tap_sum(pad_spatial(x.astype(ct, copy=False), read_pads), win, out)
    return acc / _counts(win, out, x.shape[2:], include_pad).astype(ct)


@kernel("AveragePool")
def average_pool(x, *, auto_pad, ceil_mode, count_include_pad, dilations, kernel_shape, pads, strides):
    """ONNX AveragePool; count_include_pad counts explicit pads, never the ceil_mode overhang."""
    win, out, read_pads = _geometry(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode,
                                    "AveragePool")
    return _avg(x, win, out, read_pads, bool(count_include_pad)).astype(x.dtype, copy=False)


@kernel("LpPool")
def lp_pool(x, *, auto_pad, ceil_mode, dilations, kernel_shape, p, pads, strides):
    """ONNX LpPool: (sum over the window of |x|^p)^(1/p), padding contributing zeros."""
    win, out, read_pads = _geometry(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, "LpPool")
    ct = compute_dtype(x.dtype)
    powered = np.abs(x.astype(ct, copy=False)) ** ct.type(p)
    acc = _tap_sum(pad_spatial(powered, read_pads), win, out)
    return (acc ** ct.type(1.0 / p)).astype(x.dtype, copy=False)


def _spatial_axes(x):
    return tuple(range(2, x.ndim))


@kernel("GlobalAveragePool")
def global_average_pool(x):
    """ONNX GlobalAveragePool: mean over the spatial axes."""
    ct = compute_dtype(x.dtype)
    return x.astype(ct, copy=False).mean(axis=_spatial_axes(x), keepdims=True).astype(x.dtype, copy=False)


@kernel("GlobalMaxPool")
def global_max_pool(x):
    """ONNX GlobalMaxPool: max over the spatial axes."""
    return x.max(axis=_spatial_axes(x), keepdims=True)


@kernel("GlobalLpPool")
def global_lp_pool(x, *, p):
    """ONNX GlobalLpPool: (sum over the spatial axes of |x|^p)^(1/p)."""
    ct = compute_dtype(x.dtype)
    powered = np.abs(x.astype(ct, copy=False)) ** ct.type(p)
    return (powered.sum(axis=_spatial_axes(x), keepdims=True) ** ct.type(1.0 / p)).astype(x.dtype, copy=False)


@kernel("MaxUnpool")
def max_unpool(x, indices, output_shape=None, *, kernel_shape, pads=None, strides=None):
    """Scatter x to the flat `indices` (MaxPool's) of the inferred unpooled shape; an explicit
    output_shape pads that result with zeros at the end of each axis, as onnx.reference does."""
    win = windows.window(kernel_shape, strides, None, pads, what="MaxUnpool")
    inferred = (*x.shape[:2], *windows.unpool_dims(x.shape[2:], win))
    y = np.zeros(int(np.prod(inferred)), dtype=x.dtype)
    y[indices.reshape(-1)] = x.reshape(-1)
    y = y.reshape(inferred)
    if output_shape is None:
        return y
    out = np.zeros(tuple(int(d) for d in output_shape), dtype=x.dtype)
    out[tuple(slice(0, d) for d in inferred)] = y
    return out
