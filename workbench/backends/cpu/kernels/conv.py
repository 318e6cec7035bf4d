"""Convolution kernels: im2col + one matmul per batch chunk, a tap loop for depthwise, matmul for 1x1.

Float16/bfloat16 inputs are computed in float32 and returned in their own dtype; integer
convolutions (ConvInteger, QLinearConv) are computed in float64, which is exact for them.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ....errors import ShapeError
from ....ir import windows
from ..registry import kernel
from ..windowing import compute_dtype, pad_spatial, tap_slices, taps, window_view
from .grid import axis_taps

# im2col buffers are built at most this many bytes (a few images) at a time, bounding memory.
_COLS_BYTES = 16 << 20


def _window(x, w, kernel_shape, strides, dilations, pads, what):
    kernel_shape = tuple(kernel_shape) if kernel_shape else w.shape[2:]
    return windows.window(kernel_shape, strides, dilations, pads, what=what)


def _geometry(x, w, kernel_shape, strides, dilations, pads, auto_pad, what="Conv"):
    """The Window with explicit pads, and the spatial output dims."""
    win = _window(x, w, kernel_shape, strides, dilations, pads, what)
    out, pads = windows.resolve(x.shape[2:], win, auto_pad, 0, what)
    return win._replace(pads=pads), out


def _check(x, w, group, what):
    if x.ndim < 3 or x.ndim != w.ndim or x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise ShapeError(f"{what}: X {x.shape} and W {w.shape} do not fit group={group} "
                         f"(need X.shape[1] == W.shape[1]*group and W.shape[0] % group == 0)")


def _depthwise_taps(xp, win, out):
    """(tap views, final crop, weight-shape suffix) for a depthwise tap loop.

    With stride 1 every tap is one contiguous run of the flattened padded image (outputs are
    computed at the padded row pitch and cropped at the end): far faster than 2-D strided slices.
    """
    if any(s != 1 for s in win.strides):
        views = [xp[(Ellipsis, *tap_slices(win, tap, out))] for tap in taps(win)]
        return views, (Ellipsis,), (1,) * len(out)
    span = xp.shape[2:]
    pitch = [math.prod(span[i + 1:]) for i in range(len(span))]
    length = out[0] * pitch[0]
    offsets = [sum(t * d * p for t, d, p in zip(tap, win.dilations, pitch)) for tap in taps(win)]
    flat = xp.reshape(*xp.shape[:2], -1)
    short = max(offsets) + length - flat.shape[-1]
    if short > 0:  # the last taps run past the end on rows that are cropped away
        flat = np.pad(flat, [(0, 0), (0, 0), (0, short)])
    views = [flat[..., o:o + length] for o in offsets]
    crop = (Ellipsis, slice(None), *(slice(0, o) for o in out[1:]))
    return views, crop, (1,)


def _depthwise(xp, w, group, win, out):
    """One input channel per group: a loop over kernel taps of scaled, shifted inputs."""
    n, m = xp.shape[0], w.shape[0]
    mg = m // group
    views, crop, suffix = _depthwise_taps(xp, win, out)
    wt = w.reshape(group, mg, -1)
    acc = np.zeros((n, group, mg, *views[0].shape[2:]), dtype=xp.dtype)
    tmp = np.empty_like(acc)
    for k, view in enumerate(views):
        np.multiply(view[:, :, None], wt[:, :, k].reshape(group, mg, *suffix), out=tmp)
        acc += tmp
    if len(suffix) == 1:  # flat layout: back to the padded grid, then crop the pitch
        acc = acc.reshape(n, group, mg, out[0], *xp.shape[3:])
    return np.ascontiguousarray(acc[crop]).reshape(n, m, *out)


def _im2col_matmul(xp, w, group, win, out):
    """Copy every window into a (C/g*K, P) matrix per image, then one matmul per chunk of images."""
    n, c = xp.shape[:2]
    nsp = len(out)
    p = math.prod(out)
    mg = w.shape[0] // group
    cols_k = (c // group) * math.prod(win.kernel)
    wm = w.reshape(group, mg, cols_k)
    view = window_view(xp, win, out)  # (N, C, *out, *k)
    perm = (0, *range(1 + nsp, 1 + 2 * nsp), *range(1, 1 + nsp))  # one image: (C, *k, *out)
    chunk = max(1, _COLS_BYTES // max(1, cols_k * group * p * xp.itemsize))
    y = np.empty((n, group, mg, p), dtype=xp.dtype)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        cols = np.empty((stop - start, c, *win.kernel, *out), dtype=xp.dtype)
        for i in range(start, stop):  # the im2col copy, image by image, straight into place
            cols[i - start] = view[i].transpose(perm)
        np.matmul(wm, cols.reshape(stop - start, group, cols_k, p), out=y[start:stop])
    return y.reshape(n, w.shape[0], *out)


def _pointwise(x, w, group, win, out):
    """1x1 convolution without padding: a plain matmul over channels."""
    n, c = x.shape[:2]
    xs = x[(Ellipsis, *(slice(None, None, s) for s in win.strides))]
    cols = xs.reshape(n, group, c // group, math.prod(out))
    y = np.matmul(w.reshape(group, w.shape[0] // group, c // group), cols)
    return y.reshape(n, w.shape[0], *out)


def convolve(x: np.ndarray, w: np.ndarray, group: int, win: windows.Window, out) -> np.ndarray:
    """Cross-correlation of x (N, C, *S) with w (M, C/group, *K), no bias, in x's dtype.

    >>> convolve(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), 1, windows.window((2, 2)), (2, 2))  # all 4.0
    """
    if all(k == 1 for k in win.kernel) and not any(win.pads):
        return _pointwise(x, w, group, win, out)
    xp = pad_spatial(x, win.pads)
    if x.shape[1] == group and group > 1:
        return _depthwise(xp, w, group, win, out)
    return _im2col_matmul(xp, w, group, win, out)


def _along(v, axis: int, ndim: int) -> np.ndarray:
    """A vector (or scalar) shaped to broadcast along `axis` of an ndim-D array."""
    v = np.asarray(v)
    return v.reshape(-1, *(1,) * (ndim - 1 - axis)) if v.size > 1 else v.reshape(())


def _channel_shape(v, ndim: int) -> np.ndarray:
    """A per-channel vector (or scalar) shaped to broadcast against (N, C, *spatial)."""
    return _along(v, 1, ndim)


@kernel("Conv")
def conv(x, w, b=None, *, auto_pad, dilations, group, kernel_shape, pads, strides):
    """ONNX Conv (N-D, groups, dilations, strides, auto_pad)."""
    _check(x, w, group, "Conv")
    win, out = _geometry(x, w, kernel_shape, strides, dilations, pads, auto_pad)
    ct = compute_dtype(x.dtype)
    y = convolve(x.astype(ct, copy=False), w.astype(ct, copy=False), group, win, out)
    if b is not None:
        y += _channel_shape(b.astype(ct), y.ndim)
    return y.astype(x.dtype, copy=False)


def deformed_columns(x, offset, mask, win: windows.Window, out, offset_group: int) -> np.ndarray:
    """im2col of a deformable convolution: (N, C, *kernel, *out) samples of x, bilinear (zeros outside
    the image) at each kernel position shifted by its offset, times the mask."""
    n, c, *size = x.shape
    nd, kernel = len(size), win.kernel
    off = offset.reshape(n, offset_group, *kernel, nd, *out)
    grid_shape = (1, 1, *kernel, *out)
    per_axis = []
    for a in range(nd):  # pixel coordinates along axis a: window start + dilated tap + offset
        tap = np.arange(kernel[a]) * win.dilations[a]
        start = np.arange(out[a]) * win.strides[a] - win.pads[a]
        base = tap.reshape(_axis_shape(2 + a, grid_shape)) + start.reshape(_axis_shape(2 + nd + a, grid_shape))
        per_axis.append(axis_taps(base + off.take(a, axis=2 + nd), size[a], "linear", "zeros", True))
    xg = x.reshape(n, offset_group, c // offset_group, *size)
    index = (np.arange(n).reshape(-1, *(1,) * (1 + 2 * nd)), np.arange(offset_group).reshape(1, -1, *(1,) * 2 * nd))
    cols = np.zeros((n, offset_group, *kernel, *out, c // offset_group), x.dtype)
    for combo in itertools.product(range(2), repeat=nd):  # the 2^nd bilinear corners
        weight, valid, where = 1, True, []
        for (indices, weights, valids), t in zip(per_axis, combo):
            weight, valid = weight * weights[t], valid & valids[t]
            where.append(indices[t])
        cols += xg[(*index, slice(None), *where)] * np.where(valid, weight, 0)[..., None]
    if mask is not None:
        cols *= mask.reshape(n, offset_group, *kernel, *out)[..., None].astype(x.dtype)
    cols = np.moveaxis(cols, -1, 2)  # (N, G, C/G, *kernel, *out): channel c = g * C/G + i
    return cols.reshape(n, c, *kernel, *out)


def _axis_shape(axis: int, shape: tuple) -> tuple:
    """Shape that lays a vector along `axis` of an array of `shape` (1 elsewhere)."""
    return tuple(-1 if i == axis else 1 for i in range(len(shape)))


@kernel("DeformConv")
def deform_conv(x, w, offset, b=None, mask=None, *, dilations=None, group=1, kernel_shape=None, offset_group=1,
                pads=None, strides=None):
    """ONNX DeformConv (any number of spatial dims, groups, offset groups, optional mask and bias)."""
    _check(x, w, group, "DeformConv")
    win, out = _geometry(x, w, kernel_shape, strides, dilations, pads, "NOTSET", "DeformConv")
    ct = compute_dtype(x.dtype)
    cols = deformed_columns(x.astype(ct), offset.astype(ct), mask, win, out, offset_group)
    n, c, m = x.shape[0], x.shape[1], w.shape[0]
    k = (c // group) * math.prod(win.kernel)
    y = np.matmul(w.astype(ct).reshape(group, m // group, k), cols.reshape(n, group, k, math.prod(out)))
    y = y.reshape(n, m, *out)
    if b is not None:
        y += _channel_shape(b.astype(ct), y.ndim)
    return y.astype(x.dtype, copy=False)


def _integer_conv(x, w, x_zero_point, w_zero_point, attrs, what):
    """Exact (x - x_zp) (*) (w - w_zp) in float64; w_zp may be per output channel."""
    _check(x, w, attrs["group"], what)
    win, out = _geometry(x, w, attrs["kernel_shape"], attrs["strides"], attrs["dilations"],
                         attrs["pads"], attrs["auto_pad"], what)
    xf = x.astype(np.float64)
    wf = w.astype(np.float64)
    if x_zero_point is not None:
        xf -= np.float64(np.asarray(x_zero_point).reshape(-1)[0])
    if w_zero_point is not None:
        wf -= _along(w_zero_point.astype(np.float64), 0, w.ndim)  # per output channel
    return convolve(xf, wf, attrs["group"], win, out)


@kernel("ConvInteger")
def conv_integer(x, w, x_zero_point=None, w_zero_point=None, **attrs):
    """ONNX ConvInteger: int32 output."""
    return _integer_conv(x, w, x_zero_point, w_zero_point, attrs, "ConvInteger").astype(np.int32)


@kernel("QLinearConv")
def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point=None,
                 b=None, **attrs):
    """ONNX QLinearConv: integer conv, int32 bias, requantized with round-half-to-even."""
    acc = _integer_conv(x, w, x_zero_point, w_zero_point, attrs, "QLinearConv")
    if b is not None:
        acc += _channel_shape(b.astype(np.float64), acc.ndim)
    # the multiplier is formed in float32, as the scales are float32 tensors
    multiplier = np.float32(x_scale) * np.asarray(w_scale, np.float32) / np.float32(y_scale)
    y = np.rint(acc * _channel_shape(multiplier.astype(np.float64), acc.ndim))
    out_dtype = (y_zero_point if y_zero_point is not None else x).dtype
    if y_zero_point is not None:
        y += np.float64(np.asarray(y_zero_point).reshape(-1)[0])
    info = np.iinfo(out_dtype)
    return np.clip(y, info.min, info.max).astype(out_dtype)


def _scatter_ranges(tap, win, in_dims, out, begins):
    """(source slices, destination slices) where one tap of a transposed conv lands in the output."""
    src, dst = [], []
    for t, d, s, size, o, pb in zip(tap, win.dilations, win.strides, in_dims, out, begins):
        offset = t * d - pb  # output position of input index i is i*s + offset
        lo = max(0, -(offset // s))  # first i with i*s + offset >= 0
        hi = min(size - 1, (o - 1 - offset) // s)
        if hi < lo:
            return None
        src.append(slice(lo, hi + 1))
        dst.append(slice(lo * s + offset, hi * s + offset + 1, s))
    return tuple(src), tuple(dst)


@kernel("ConvTranspose")
def conv_transpose(x, w, b=None, *, auto_pad, dilations, group, kernel_shape, output_padding,
                   output_shape, pads, strides):
    """ONNX ConvTranspose: one matmul (W^T x) per group, then a tap loop scatters into the output."""
    if x.ndim < 3 or x.ndim != w.ndim or x.shape[1] != w.shape[0] or x.shape[1] % group:
        raise ShapeError(f"ConvTranspose: X {x.shape} and W {w.shape} do not fit group={group} "
                         f"(need X.shape[1] == W.shape[0], divisible by group)")
    win = _window(x, w, kernel_shape, strides, dilations, pads, "ConvTranspose")
    out, pads = windows.conv_transpose_geometry(x.shape[2:], win, auto_pad, output_padding,
                                                output_shape)
    ct = compute_dtype(x.dtype)
    n, c = x.shape[:2]
    mg, k = w.shape[1], math.prod(win.kernel)
    xg = x.astype(ct, copy=False).reshape(n, group, c // group, -1)
    wg = w.astype(ct, copy=False).reshape(group, c // group, mg * k).transpose(0, 2, 1)
    cols = np.matmul(wg, xg).reshape(n, group * mg, k, *x.shape[2:])
    y = np.zeros((n, group * mg, *out), dtype=ct)
    nsp = len(out)
    for i, tap in enumerate(taps(win)):
        ranges = _scatter_ranges(tap, win, x.shape[2:], out, pads[:nsp])
        if ranges is not None:
            y[(Ellipsis, *ranges[1])] += cols[:, :, i][(Ellipsis, *ranges[0])]
    if b is not None:
        y += _channel_shape(b.astype(ct), y.ndim)
    return y.astype(x.dtype, copy=False)
