"""NumPy kernels of AffineGrid and GridSample (any number of spatial dims), as onnx.reference computes them.

GridSample is separable: along each spatial axis a sample point has a few taps (1 nearest, 2 linear,
4 cubic) with weights; the output sums, over every combination of taps, the product of the weights
times the pixel the taps address. Pixels outside the image are 0 (padding "zeros") or come from the
clamped ("border") or mirrored ("reflection") index.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..registry import kernel
from .elementwise import widen

CUBIC_ALPHA = -0.75  # Keys' cubic convolution, as PyTorch and ONNX use


# ---------------------------------------------------------------------------------- AffineGrid
def base_grid(sizes, align_corners: bool, dtype) -> np.ndarray:
    """Homogeneous normalized coordinates (*sizes, k+1): (x, y[, z], 1), x along the last axis."""
    axes = [np.linspace(-1.0, 1.0, n) if align_corners else (2.0 * np.arange(n) + 1) / n - 1 for n in sizes]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([*mesh[::-1], np.ones(tuple(sizes))], axis=-1).astype(dtype)


@kernel("AffineGrid")
def affine_grid(theta, size, *, align_corners=0):
    sizes = [int(s) for s in np.asarray(size).reshape(-1)[2:]]
    (t,) = widen(theta)
    grid = base_grid(sizes, bool(align_corners), t.dtype)
    out = np.einsum("...k,njk->n...j", grid, t)
    return out.astype(theta.dtype)


# ---------------------------------------------------------------------------------- GridSample
def denormalize(n, length: int, align_corners: bool):
    """Pixel coordinate of normalized coordinate n on an axis of `length` pixels."""
    return (n + 1) / 2 * (length - 1) if align_corners else ((n + 1) * length - 1) / 2


def reflect(x, low: float, high: float):
    """x mirrored at the borders `low` and `high` (repeatedly) until it lies between them."""
    span = high - low
    if span <= 0:
        return np.full_like(x, low)
    below = x < low
    dist = np.where(below, low - x, x - high)
    folds = np.floor(dist / span)
    rest = dist - folds * span
    even = folds % 2 == 0
    from_low, from_high = low + rest, high - rest
    return np.where(below, np.where(even, from_low, from_high),
                    np.where(x > high, np.where(even, from_high, from_low), x))


def _borders(length: int, align_corners: bool) -> tuple:
    return (0.0, length - 1.0) if align_corners else (-0.5, length - 0.5)


def _cubic_weights(t):
    """The 4 Keys cubic weights of taps at offsets -1, 0, 1, 2 from floor(x), t = x - floor(x)."""
    a = CUBIC_ALPHA

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def axis_taps(x, length: int, mode: str, padding_mode: str, align_corners: bool) -> tuple:
    """(indices, weights, valid) per tap along one axis for pixel coordinates x (any shape)."""
    low, high = _borders(length, align_corners)
    if mode == "nearest":
        x = np.rint(x)  # half to even, like PyTorch
    outside = (x < low) | (x > high)
    if padding_mode == "border":
        x = np.where(outside, np.clip(x, 0, length - 1), x)
    elif padding_mode == "reflection":
        x = np.where(outside, reflect(x, low, high), x)
    if mode == "nearest":
        starts, weights = [np.trunc(x)], [np.ones_like(x)]
    else:
        floor = np.floor(x)
        t = x - floor
        if mode == "linear":
            starts, weights = [floor, floor + 1], [1 - t, t]
        else:
            starts, weights = [floor - 1, floor, floor + 1, floor + 2], _cubic_weights(t)
    taps = [_pixel_index(i, length, padding_mode, low, high) for i in starts]
    return [i for i, _ in taps], weights, [v for _, v in taps]


def _pixel_index(i, length: int, padding_mode: str, low: float, high: float) -> tuple:
    """(index into the axis, whether the pixel exists) for integer-valued coordinates i."""
    if padding_mode == "border":
        i = np.clip(i, 0, length - 1)
    elif padding_mode == "reflection":
        i = np.trunc(reflect(i, low, high))
    valid = (i >= 0) & (i < length)
    return np.clip(i, 0, length - 1).astype(np.intp), valid


@kernel("GridSample")
def grid_sample(x, grid, *, align_corners=0, mode="linear", padding_mode="zeros"):
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    wx, wg = widen(x, grid)
    spatial = x.shape[2:]
    nd = len(spatial)
    # grid[..., k] addresses spatial axis nd-1-k (x is the innermost axis)
    per_axis = [axis_taps(denormalize(wg[..., nd - 1 - a], spatial[a], bool(align_corners)), spatial[a],
                          mode, padding_mode, bool(align_corners)) for a in range(nd)]
    channels_last = np.moveaxis(wx, 1, -1)  # (N, *in_spatial, C): gathering leaves C innermost
    batch = np.arange(x.shape[0]).reshape((-1,) + (1,) * (wg.ndim - 2))
    out = np.zeros(wg.shape[:-1] + (x.shape[1],), dtype=wx.dtype)
    for combo in itertools.product(*(range(len(taps[0])) for taps in per_axis)):
        weight, valid, index = 1, True, [batch]
        for (indices, weights, valids), t in zip(per_axis, combo):
            weight, valid = weight * weights[t], valid & valids[t]
            index.append(indices[t])
        out += channels_last[tuple(index)] * np.where(valid, weight, 0)[..., None]
    return np.moveaxis(out, -1, 1).astype(x.dtype)
