"""Pooling kernels: max and sum are separable, so a window reduces one spatial axis at a time (2k taps
for a k x k window, not k*k); MaxPool's indices need every tap and loop over them on a FlatTaps layout."""
from __future__ import annotations

import functools

import numpy as np

from ....ir import windows
from ..registry import kernel
from ..windowing import compute_dtype, flat_taps, separable_reduce, taps


def _geometry(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, what):
    """(window with explicit pads, output dims). With ceil_mode the last window may reach past the
    end padding: those cells are never read (or hold the fill value), and _counts never counts them.
    Cached per shape and attributes: layers run the same geometry on every call."""
    return _geometry_of(x.shape[2:], _tuple(kernel_shape), _tuple(strides), _tuple(dilations), _tuple(pads),
                        auto_pad, ceil_mode, what)


def _tuple(v):
    return tuple(v) if isinstance(v, (list, np.ndarray)) else v


@functools.lru_cache(maxsize=1024)
def _geometry_of(spatial, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, what):
    win = windows.window(kernel_shape, strides, dilations, pads, what=what)
    out, pads = windows.resolve(spatial, win, auto_pad, ceil_mode, what)
    return win._replace(pads=tuple(pads)), tuple(out)


def _tap_reduce(ft, ufunc) -> np.ndarray:
    """ufunc (np.maximum, np.add) over the kernel taps, on the run grid: (N, C, length)."""
    acc = ft.run(0).copy()
    for k in range(1, len(ft.offset)):
        ufunc(acc, ft.run(k), out=acc)
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


def _argmax_tap(ft, best):
    """Index (in taps() order) of the first tap that reaches the maximum, per position of the run grid."""
    arg = np.zeros(best.shape, dtype=np.int32)
    hit = np.empty(best.shape, dtype=bool)
    for k in range(len(ft.offset) - 1, -1, -1):  # backwards, so the first maximum wins
        np.equal(ft.run(k), best, out=hit)
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
    win, out = _geometry(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, "MaxPool")
    if not _indices:
        return separable_reduce(x, win, out, np.maximum, _lowest(x.dtype))
    ft = flat_taps(x, win, out, _lowest(x.dtype))  # the indices need every tap's value on one grid
    best = _tap_reduce(ft, np.maximum)
    arg = ft.crop(_argmax_tap(ft, best))
    return np.ascontiguousarray(ft.crop(best)), _flat_indices(arg, win, out, x.shape, storage_order)


def _window_sum(x, win, out):
    """Sum over each window, padding contributing zeros: (N, C, *out)."""
    return separable_reduce(x, win, out, np.add)


@kernel("AveragePool")
def average_pool(x, *, auto_pad, ceil_mode, count_include_pad, dilations, kernel_shape, pads, strides):
    """ONNX AveragePool; count_include_pad counts explicit pads, never the ceil_mode overhang."""
    win, out = _geometry(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, "AveragePool")
    ct = compute_dtype(x.dtype)
    total = _window_sum(x.astype(ct, copy=False), win, out)
    counts = _counts(win, out, x.shape[2:], bool(count_include_pad)).astype(ct)
    return np.divide(total, counts, out=total).astype(x.dtype, copy=False)


@kernel("LpPool")
def lp_pool(x, *, auto_pad, ceil_mode, dilations, kernel_shape, p, pads, strides):
    """ONNX LpPool: (sum over the window of |x|^p)^(1/p), padding contributing zeros."""
    win, out = _geometry(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, "LpPool")
    ct = compute_dtype(x.dtype)
    powered = np.abs(x.astype(ct, copy=False)) ** ct.type(p)
    return (_window_sum(powered, win, out) ** ct.type(1.0 / p)).astype(x.dtype, copy=False)


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
