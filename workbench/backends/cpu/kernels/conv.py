"""Convolution kernels. Each way of computing a convolution is a CPU tactic (see METHODS):

    pointwise  1x1 without padding: one matmul over channels
    depthwise  one input channel per group: a tap loop of per-channel multiply-adds
    im2col     every window copied into a (C*K, P) matrix, then one matmul
    taps       one matmul per kernel tap straight on a shifted view of the input, summed
    winograd   3x3 stride 1: 16 matmuls on transformed 4x4 tiles, 2.25x fewer multiplies

Float16/bfloat16 inputs are computed in float32 and returned in their own dtype; integer
convolutions (ConvInteger, QLinearConv) are computed in float64, which is exact for them.
"""
from __future__ import annotations

import functools
import itertools
import math
import weakref

import numpy as np

from ....errors import ShapeError, UnsupportedError
from ....ir import windows
from ..registry import kernel, tactics
from ..windowing import compute_dtype, flat_taps, taps
from .grid import axis_taps

# im2col buffers are built at most this many bytes (a few images) at a time, bounding memory.
_COLS_BYTES = 16 << 20
# depthwise works on blocks of channels whose accumulator has about this many bytes: big temporaries
# that miss the caches were 3-4x slower (measured best at 1 MiB with a 1 MiB L2 cache).
_BLOCK_BYTES = 1 << 20
# im2col columns up to this size are copied in one strided pass (_im2col_small): faster for small
# layers (measured 24 vs 35 us at batch 1 on the digits CNN, even at 7 MB for 3x3 stride 1), slower
# for a 7x7 stride-2 stem (3.2 vs 2.9 ms), whose big strided reads the tap-by-tap runs avoid.
_STRIDED_COLS_BYTES = 1 << 20


@functools.lru_cache(maxsize=1024)
def _geometry_of(x_shape, w_shape, kernel_shape, strides, dilations, pads, auto_pad, what):
    kernel_shape = kernel_shape or w_shape[2:]
    win = windows.window(kernel_shape, strides, dilations, pads, what=what)
    out, pads = windows.resolve(x_shape[2:], win, auto_pad, 0, what)
    return win._replace(pads=pads), tuple(out)


def _tuple(v):
    return tuple(v) if v else None


def _geometry(x, w, kernel_shape, strides, dilations, pads, auto_pad, what="Conv"):
    """The Window with explicit pads, and the spatial output dims (cached: layers repeat shapes)."""
    return _geometry_of(x.shape, w.shape, _tuple(kernel_shape), _tuple(strides), _tuple(dilations),
                        _tuple(pads), auto_pad, what)


def _check(x, w, group, what):
    if x.ndim < 3 or x.ndim != w.ndim or x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise ShapeError(f"{what}: X {x.shape} and W {w.shape} do not fit group={group} "
                         f"(need X.shape[1] == W.shape[1]*group and W.shape[0] % group == 0)")


def _with_bias(y, bias):
    """y (N, M, ...) plus a per-channel bias, in place."""
    if bias is not None:
        y += bias.reshape(-1, *(1,) * (y.ndim - 2))
    return y


def _store(dst, src, bias):
    """dst = src (+ bias broadcast against it): the copy that crops a result into place adds the bias too."""
    if bias is None:
        np.copyto(dst, src)
    else:
        np.add(src, bias, out=dst)


def _pointwise(x, w, group, win, out, bias):
    """1x1 convolution without padding: a plain matmul over channels."""
    n, c = x.shape[:2]
    xs = x[(Ellipsis, *(slice(None, None, s) for s in win.strides))]
    cols = xs.reshape(n, group, c // group, math.prod(out))
    y = np.matmul(w.reshape(group, w.shape[0] // group, c // group), cols)
    return _with_bias(y.reshape(n, w.shape[0], *out), bias)


def _depthwise(x, w, group, win, out, bias):
    """One input channel per group: per tap, scale a shifted view by per-channel weights and add.

    Channels go in blocks whose accumulator stays in cache; each block is cropped (and biased) straight
    into the output.
    """
    ft = flat_taps(x, win, out)
    n, c = x.shape[:2]
    mg = w.shape[0] // c
    wt = w.reshape(c, mg, -1, 1)
    bt = None if bias is None else bias.reshape(c, mg, *(1,) * len(out))
    y = np.empty((n, c, mg, *out), dtype=x.dtype)
    block = max(1, min(c, _BLOCK_BYTES // (n * mg * ft.length * x.itemsize)))
    acc = np.empty((n, block, mg, ft.length), dtype=x.dtype)
    tmp = np.empty_like(acc)
    for c0 in range(0, c, block):
        c1 = min(c, c0 + block)
        a, t = acc[:, :c1 - c0], tmp[:, :c1 - c0]
        for k in range(len(ft.offset)):
            np.multiply(ft.run(k)[:, c0:c1, None], wt[c0:c1, :, k], out=t if k else a)
            if k:
                a += t
        _store(y[:, c0:c1], ft.crop(a), None if bt is None else bt[c0:c1])
    return y.reshape(n, w.shape[0], *out)


def _im2col(x, w, group, win, out, bias):
    """Copy every window into a (C/g*K, P) matrix per image, then one matmul per chunk of images."""
    if x.shape[0] * x.shape[1] * math.prod(win.kernel) * math.prod(out) * x.itemsize <= _STRIDED_COLS_BYTES \
            and min(win.pads, default=0) >= 0 and x.dtype.char in "fd":  # float32/64: a plain buffer
        return _im2col_small(x, w, group, win, out, bias)
    ft = flat_taps(x, win, out)
    n, c = x.shape[:2]
    k, p = len(ft.offset), math.prod(out)
    mg, rows = w.shape[0] // group, (c // group) * k
    wm = w.reshape(group, mg, rows)
    chunk = max(1, _COLS_BYTES // max(1, c * k * p * x.itemsize))
    y = np.empty((n, group, mg, p), dtype=x.dtype)
    cols = np.empty((min(n, chunk), c, k, *out), dtype=x.dtype)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        part = cols[:stop - start]
        for i in range(k):  # the im2col copy, tap by tap: contiguous reads of each tap's run
            part[:, :, i] = ft.crop(ft.run(i)[start:stop])
        np.matmul(wm, part.reshape(stop - start, group, rows, p), out=y[start:stop])
    return _with_bias(y.reshape(n, w.shape[0], *out), bias)


def _im2col_small(x, w, group, win, out, bias):
    """_im2col for small layers: the columns in ONE copy, from a window view of the zero-padded input.

    Same columns, same matmul; but 2 copies instead of one per tap (and per stride phase), which
    saves ~10 us a layer where a batch-1 layer itself takes 20-40 us.
    """
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    begins, ends = win.pads[:len(spatial)], win.pads[len(spatial):]
    padded = np.zeros((n, c, *(s + b + e for s, b, e in zip(spatial, begins, ends))), dtype=x.dtype)
    padded[(Ellipsis, *(slice(b, b + s) for b, s in zip(begins, spatial)))] = x
    st = padded.strides
    # the window view (N, C, *kernel, *out), read-only; np.ndarray over the buffer costs ~1 us, as_strided ~5
    view = np.ndarray((n, c, *win.kernel, *out), padded.dtype, padded,
                      strides=(*st[:2], *(a * d for a, d in zip(st[2:], win.dilations)),
                               *(a * s for a, s in zip(st[2:], win.strides))))
    mg, rows = w.shape[0] // group, (c // group) * math.prod(win.kernel)
    cols = np.ascontiguousarray(view).reshape(n, group, rows, math.prod(out))
    y = np.matmul(w.reshape(group, mg, rows), cols)
    return _with_bias(y.reshape(n, w.shape[0], *out), bias)


def _taps(x, w, group, win, out, bias):
    """Sum over kernel taps of W[:, :, tap] @ (the input shifted by the tap): BLAS reads each shifted
    view in place (no im2col copy), at the cost of adding K partial products (group 1 only)."""
    ft = flat_taps(x, win, out)
    wk = _packed(w, "taps")
    acc = np.matmul(wk[0], ft.run(0))
    part = np.empty_like(acc)
    for i in range(1, len(ft.offset)):
        acc += np.matmul(wk[i], ft.run(i), out=part)
    y = np.empty((*acc.shape[:2], *out), dtype=x.dtype)
    _store(y, ft.crop(acc), None if bias is None else bias.reshape(-1, *(1,) * len(out)))
    return y


# Winograd F(2x2, 3x3) (Lavin & Gray, 2015): each 4x4 input tile gives a 2x2 output tile with 16
# products per (output, input) channel pair instead of 36. Y = AT [(G g GT) * (BT d B)] A.
_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])


def _winograd(x, w, group, win, out, bias):
    """3x3, stride 1, group 1: transform the input tiles and the weights, 16 matmuls, transform back."""
    n, c, m = *x.shape[:2], w.shape[0]
    tiles = tuple(-(-o // 2) for o in out)
    ft = flat_taps(x, win._replace(kernel=(4, 4), strides=(2, 2)), tiles)  # tap (i, j): d[i, j] of every tile
    v = np.empty((4, 4, n, c, ft.length), dtype=x.dtype)
    rows = [_combine(_BT, [ft.run(4 * i + j) for j in range(4)]) for i in range(4)]  # d B, row by row
    for nu in range(4):
        _combine(_BT, [rows[i][nu] for i in range(4)], out=v[:, nu])  # BT (d B)
    prod = np.matmul(_packed(w, "winograd"), v.reshape(16, n, c, -1)).reshape(4, 4, n, m, -1)
    half = [_combine(_AT, list(prod[i])) for i in range(4)]  # (...) A
    y = np.empty((n, m, tiles[0], 2, tiles[1], 2), dtype=x.dtype)
    b = None if bias is None else bias.reshape(-1, 1, 1)
    for q in range(2):
        for p, part in enumerate(_combine(_AT, [half[i][q] for i in range(4)])):  # AT (...)
            _store(y[:, :, :, p, :, q], ft.crop(part), b)
    y = y.reshape(n, m, 2 * tiles[0], 2 * tiles[1])
    return y if y.shape[2:] == tuple(out) else np.ascontiguousarray(y[:, :, :out[0], :out[1]])


def _combine(mat, parts, out=None) -> list:
    """[sum over k of mat[r, k] * parts[k], for each row r] for a matrix of 0 and +-1: adds and subtracts."""
    results = []
    for r, row in enumerate(mat):
        (_, first), (c, second), *rest = sorted(((c, p) for c, p in zip(row, parts) if c), key=lambda t: -t[0])
        acc = (np.add if c > 0 else np.subtract)(first, second, out=None if out is None else out[r])
        for c, part in rest:
            (np.add if c > 0 else np.subtract)(acc, part, out=acc)
        results.append(acc)
    return results


_PACKED: dict = {}  # (id(weights), layout) -> (weak reference, weights in that layout)
_LAYOUTS = {
    "taps": lambda w: np.moveaxis(w.reshape(*w.shape[:2], -1), 2, 0),  # (K, M, C)
    "winograd": lambda w: np.einsum("ai,mcij,bj->abmc", _G, w.astype(np.float64), _G).reshape(16, 1, *w.shape[:2]),
}


def _packed(w: np.ndarray, layout: str) -> np.ndarray:
    """w rearranged for a method, contiguous, in w's dtype; kept while w lives, so engine weights are
    rearranged once."""
    key = (id(w), layout)
    hit = _PACKED.get(key)
    if hit is not None and hit[0]() is w:
        return hit[1]
    packed = np.ascontiguousarray(_LAYOUTS[layout](w), dtype=w.dtype)
    try:
        ref = weakref.ref(w, lambda _, key=key: _PACKED.pop(key, None))
    except TypeError:  # not weak-referenceable: rearranged on every call
        return packed
    _PACKED[key] = (ref, packed)
    return packed


METHODS = {"pointwise": _pointwise, "depthwise": _depthwise, "im2col": _im2col, "taps": _taps,
           "winograd": _winograd}


def methods(x_shape, w_shape, group: int, win: windows.Window) -> tuple:
    """The METHODS that can compute this convolution, the default first (what a CPU tactic chooses from)."""
    try:
        return _methods(tuple(x_shape), tuple(w_shape), group, win)
    except TypeError:  # a window given with list fields: not hashable, worked out uncached
        return _methods.__wrapped__(x_shape, w_shape, group, win)


@functools.lru_cache(maxsize=1024)  # asked on every run of every Conv layer
def _methods(x_shape, w_shape, group: int, win: windows.Window) -> tuple:
    if all(k == 1 for k in win.kernel) and not any(win.pads):
        return ("pointwise",)
    if x_shape[1] == group and group > 1:
        return ("depthwise",)
    if group > 1 or x_shape[1] < 16:  # per-tap matmuls contract over C alone: hopeless for an RGB stem
        return ("im2col",)
    winograd = win.kernel == (3, 3) and win.strides == (1, 1) and win.dilations == (1, 1)
    return ("im2col", "taps", "winograd") if winograd else ("im2col", "taps")


def convolve(x: np.ndarray, w: np.ndarray, group: int, win: windows.Window, out, bias=None,
             method: str | None = None) -> np.ndarray:
    """Cross-correlation of x (N, C, *S) with w (M, C/group, *K), plus bias (M,): a new array in x's dtype.

    method: one of methods(...) (None: the default).

    >>> convolve(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), 1, windows.window((2, 2)), (2, 2))  # all 4.0
    """
    able = methods(x.shape, w.shape, group, win)
    if method is not None and method not in able:
        raise UnsupportedError(f"convolution method {method!r} does not apply here; use one of {able}")
    return METHODS[method or able[0]](x, w, group, win, out, bias)


def _along(v, axis: int, ndim: int) -> np.ndarray:
    """A vector (or scalar) shaped to broadcast along `axis` of an ndim-D array."""
    v = np.asarray(v)
    return v.reshape(-1, *(1,) * (ndim - 1 - axis)) if v.size > 1 else v.reshape(())


def _channel_shape(v, ndim: int) -> np.ndarray:
    """A per-channel vector (or scalar) shaped to broadcast against (N, C, *spatial)."""
    return _along(v, 1, ndim)


def conv_compute(x, w, b=None, *, auto_pad, dilations, group, kernel_shape, pads, strides, method=None):
    """Conv(x, w, b) in the compute dtype: a new array the caller may modify in place."""
    _check(x, w, group, "Conv")
    win, out = _geometry(x, w, kernel_shape, strides, dilations, pads, auto_pad)
    ct = compute_dtype(x.dtype)
    bias = None if b is None else b.astype(ct, copy=False)
    return convolve(x.astype(ct, copy=False), w.astype(ct, copy=False), group, win, out, bias, method)


@tactics("Conv", METHODS)
def conv_tactics(shapes, attrs: dict) -> tuple:
    """The METHODS that apply to a Conv (or FusedConv) of these input shapes."""
    x_shape, w_shape = tuple(shapes[0]), tuple(shapes[1])
    win, _ = _geometry_of(x_shape, w_shape, *(_tuple(attrs[k]) for k in ("kernel_shape", "strides", "dilations",
                                                                         "pads")), attrs["auto_pad"], "Conv")
    return methods(x_shape, w_shape, attrs["group"], win)


@kernel("Conv")
def conv(x, w, b=None, **attrs):
    """ONNX Conv (N-D, groups, dilations, strides, auto_pad); attrs may add method= (see METHODS)."""
    return conv_compute(x, w, b, **attrs).astype(x.dtype, copy=False)


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
    win = windows.window(tuple(kernel_shape) if kernel_shape else w.shape[2:], strides, dilations, pads,
                         what="ConvTranspose")
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
