"""Resize and Upsample: separable, one axis at a time; each axis is a gather (nearest) or a small
weighted sum of gathers (linear: 2 taps, cubic: 4, more with antialias when downsampling)."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ....errors import ShapeError
from ..registry import kernel
from ..windowing import compute_dtype


class _Mode(NamedTuple):
    """How one Resize interpolates (the attributes that matter per axis)."""

    mode: str
    coord: str
    nearest: str
    cubic_a: float
    antialias: bool
    exclude_outside: bool
    extrapolation: float


def _source_coords(coord: str, out_size: int, in_size: int, scale: float, roi_pair):
    """Input coordinate of every output index along one axis (onnx.reference's conventions)."""
    y = np.arange(out_size, dtype=np.float64)
    out_width = scale * in_size  # the real-valued output length, not the rounded one
    if coord == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if coord == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / out_width)
        return offset + (y + 0.5) / scale - 0.5
    if coord == "pytorch_half_pixel":
        return np.full(out_size, -0.5) if out_width == 1 else (y + 0.5) / scale - 0.5
    if coord == "align_corners":
        return np.zeros(out_size) if out_width == 1 else y * (in_size - 1) / (out_width - 1)
    if coord == "asymmetric":
        return y / scale
    if coord == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale
    if coord == "tf_crop_and_resize":
        start, end = roi_pair
        span = (end - start) * (in_size - 1)
        x = np.full(out_size, span / 2) if out_width == 1 else y * span / (out_width - 1)
        return x + start * (in_size - 1)
    raise ShapeError(f"Resize: unknown coordinate_transformation_mode {coord!r}")


def _nearest_index(x: np.ndarray, nearest: str, scale: float) -> np.ndarray:
    if nearest == "round_prefer_floor":
        idx = np.ceil(x - 0.5)
    elif nearest == "round_prefer_ceil":
        idx = np.floor(x + 0.5)
    elif nearest == "floor":
        idx = np.floor(x)
    elif nearest == "ceil":
        idx = np.ceil(x)
    elif nearest == "simple":  # Upsample and Resize-10 (onnxruntime's rule)
        idx = np.ceil(x) if scale < 1 else np.trunc(x)
    else:
        raise ShapeError(f"Resize: unknown nearest_mode {nearest!r}")
    return idx.astype(np.int64)


def _cubic(t: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with coefficient a."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _taps_and_weights(x: np.ndarray, scale: float, in_size: int, m: _Mode):
    """(indices, weights), both (out, taps), of linear/cubic interpolation at coordinates x."""
    support = 2.0 if m.mode == "cubic" else 1.0
    s = min(scale, 1.0) if m.antialias else 1.0  # antialias widens the kernel when downsampling
    lo = math.floor(-support / s) + 1
    offsets = np.arange(lo, 1 - lo + 1)
    # left neighbour with ratio in (0, 1]: an exact integer x counts as ratio 1 (the reference's tie rule)
    base = np.ceil(x) - 1
    ratio = x - base
    t = (offsets[None, :] - ratio[:, None]) * s
    w = _cubic(t, m.cubic_a) if m.mode == "cubic" else np.clip(1 - np.abs(t), 0, 1)
    if m.antialias:
        w = w / w.sum(axis=1, keepdims=True)
    idx = base.astype(np.int64)[:, None] + offsets[None, :]
    if m.exclude_outside:
        w = np.where((idx < 0) | (idx >= in_size), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return idx, w


def _axis_map(x: np.ndarray, scale: float, in_size: int, m: _Mode):
    """(indices, weights), both (out, taps), of one axis; indices may fall outside (edges clamp them)."""
    if m.mode == "nearest":
        return _nearest_index(x, m.nearest, scale)[:, None], None
    if m.mode in ("linear", "cubic"):
        return _taps_and_weights(x, scale, in_size, m)
    raise ShapeError(f"Resize: mode {m.mode!r} is not one of nearest, linear, cubic")


def _periodic(idx, w, in_size: int, out_size: int):
    """(P, Q, shifts, weights) when output o + P reads inputs Q further on with the same weights
    (any rational scale, most coordinate modes), else None; shifts and weights are per phase o % P."""
    g = math.gcd(in_size, out_size)
    if g == 0 or out_size == 0:
        return None
    period, step = out_size // g, in_size // g
    if period > 8:  # too many phases: the per-phase loop would cost more than a gather
        return None
    shifts = idx.reshape(g, period, -1) - step * np.arange(g)[:, None, None]
    if not (shifts == shifts[0]).all():
        return None
    if w is not None:
        wr = w.reshape(g, period, -1)
        if not (wr == wr[0]).all():  # exactly: then results are bit-identical to the gather
            return None
        w = wr[0]
    return period, step, shifts[0], w


def _resize_periodic(data, axis: int, out_size: int, period: int, step: int, shifts, w):
    """One axis as sums of strided slices, one output phase at a time (no per-element gather).

    Clamping at the edges becomes edge padding, written once.
    """
    rows = out_size // period
    lo = max(0, -int(shifts.min()))
    hi = max(0, int(shifts.max()) + step * (rows - 1) - (data.shape[axis] - 1))
    if lo or hi:
        widths = [(0, 0)] * data.ndim
        widths[axis] = (lo, hi)
        data = np.pad(data, widths, mode="edge")
    pre = (slice(None),) * axis
    y = np.empty((*data.shape[:axis], out_size, *data.shape[axis + 1:]), dtype=data.dtype)
    phases = y.reshape(*data.shape[:axis], rows, period, *data.shape[axis + 1:])
    for r in range(period):
        dst = phases[(*pre, slice(None), r)]
        for k, shift in enumerate(shifts[r]):
            start = lo + int(shift)
            src = data[(*pre, slice(start, start + step * (rows - 1) + 1, step))]
            if w is None:
                np.copyto(dst, src)
            elif k == 0:
                np.multiply(src, w[r, 0], out=dst)
            else:
                dst += src * w[r, k]
    return y


def _resize_axis(data, axis: int, out_size: int, scale: float, roi_pair, m: _Mode):
    in_size = data.shape[axis]
    x = _source_coords(m.coord, out_size, in_size, scale, roi_pair)
    idx, w = _axis_map(x, scale, in_size, m)
    if w is not None:
        w = w.astype(data.dtype)
    fast = None if m.coord == "tf_crop_and_resize" else _periodic(idx, w, in_size, out_size)
    if fast is not None:
        return _resize_periodic(data, axis, out_size, *fast)
    idx = np.clip(idx, 0, in_size - 1)
    shape = [1] * data.ndim
    shape[axis] = out_size
    res = np.take(data, idx[:, 0], axis=axis)
    if w is not None:
        res *= w[:, 0].reshape(shape)
        for k in range(1, idx.shape[1]):
            res += np.take(data, idx[:, k], axis=axis) * w[:, k].reshape(shape)
    if m.coord == "tf_crop_and_resize":
        outside = ((x < 0) | (x > in_size - 1)).reshape(shape)
        res = np.where(outside, np.asarray(m.extrapolation).astype(res.dtype), res)
    return res


def _plan(shape, axes, scales, sizes, policy: str):
    """Per resized axis: (axis, output size, scale)."""
    if sizes is not None:
        sizes = [int(v) for v in sizes.reshape(-1)]
        if len(sizes) != len(axes):
            raise ShapeError(f"Resize: {len(sizes)} sizes for {len(axes)} axes of input {shape}")
        ratios = [s / shape[a] for a, s in zip(axes, sizes)]
        if policy == "stretch":
            return [(a, s, r) for a, s, r in zip(axes, sizes, ratios)]
        r = min(ratios) if policy == "not_larger" else max(ratios)
        return [(a, int(r * shape[a] + 0.5), r) for a in axes]
    scales = [float(v) for v in scales.reshape(-1)]
    if len(scales) != len(axes):
        raise ShapeError(f"Resize: {len(scales)} scales for {len(axes)} axes of input {shape}")
    if min(scales) <= 0:
        raise ShapeError(f"Resize: scales must be positive, got {scales}")
    return [(a, int(math.floor(shape[a] * s)), s) for a, s in zip(axes, scales)]


def _roi_pairs(roi, axes, rank):
    """(start, end) per resized axis from roi = [starts..., ends...] (per axis given, or all axes)."""
    if roi is None or roi.size == 0:
        return {a: (0.0, 1.0) for a in axes}
    roi = [float(v) for v in roi.reshape(-1)]
    n = len(roi) // 2
    listed = axes if n == len(axes) else list(range(rank))
    return {a: (roi[i], roi[n + i]) for i, a in enumerate(listed)}


def _float_dtype(dtype):
    """Interpolation dtype: float32 for half floats; float64 for integers, whose results are
    rounded back (float32 would flip some .5 ties)."""
    if np.issubdtype(dtype, np.integer):
        return np.dtype(np.float64)
    return compute_dtype(dtype)


def _interpolate(x, plan, rois, m: _Mode):
    """Apply the plan one axis at a time; nearest stays in x's dtype, the rest computes in float."""
    if m.mode == "nearest" and m.coord != "tf_crop_and_resize":
        data = x
    else:
        data = x.astype(_float_dtype(x.dtype))
    if not np.issubdtype(x.dtype, np.integer):  # (integers round ties: there the order would show)
        # shrinking axes first, then the last axis (the costly one) while the data is still small
        plan = sorted(plan, key=lambda p: (p[1] > x.shape[p[0]], -p[0]))
    for axis, out_size, scale in plan:
        if out_size == data.shape[axis] and scale == 1.0 and rois[axis] == (0.0, 1.0):
            continue  # identity along this axis
        data = _resize_axis(data, axis, out_size, scale, rois[axis], m)
    if data.dtype == x.dtype:
        return data
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        return np.clip(np.round(data), info.min, info.max).astype(x.dtype)
    return data.astype(x.dtype)


def _given(a):
    return a is not None and a.size > 0


@kernel("Resize")
def resize(x, roi=None, scales=None, sizes=None, *, antialias, axes, coordinate_transformation_mode,
           cubic_coeff_a, exclude_outside, extrapolation_value, keep_aspect_ratio_policy, mode,
           nearest_mode):
    """ONNX Resize (opsets 10..19)."""
    coord, nearest = coordinate_transformation_mode, nearest_mode
    if not _given(scales) and not _given(sizes) and _given(roi):  # Resize-10: (X, scales)
        scales, roi, coord, nearest = roi, None, "asymmetric", "simple"
    if not _given(scales) and not _given(sizes):
        raise ShapeError("Resize: give either scales or sizes")
    axes = [a % x.ndim for a in axes] if axes else list(range(x.ndim))
    plan = _plan(x.shape, axes, scales if _given(scales) and not _given(sizes) else None,
                 sizes if _given(sizes) else None, keep_aspect_ratio_policy)
    m = _Mode(mode, coord, nearest, cubic_coeff_a, bool(antialias) and mode != "nearest",
              bool(exclude_outside), extrapolation_value)
    return _interpolate(x, plan, _roi_pairs(roi, axes, x.ndim), m)


@kernel("Upsample")
def upsample(x, scales_input=None, *, mode, scales):
    """ONNX Upsample (deprecated): asymmetric coordinates; scales input (opset 9) or attribute (7)."""
    values = np.asarray(scales_input if scales_input is not None else scales, dtype=np.float64)
    plan = _plan(x.shape, list(range(x.ndim)), values, None, "stretch")
    m = _Mode("linear" if mode in ("linear", "bilinear") else mode, "asymmetric", "simple", -0.75,
              False, False, 0.0)
    return _interpolate(x, plan, _roi_pairs(None, list(range(x.ndim)), x.ndim), m)
