"""NumPy helpers for sliding-window kernels (convolution, pooling): padding, taps, im2col views.

Spatial axes are the trailing ones (N, C, *spatial). A "tap" is one position inside the kernel;
looping over taps (9 for a 3x3 kernel) with whole-tensor slices keeps every kernel vectorised.
"""
from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...ir.windows import Window

def _is_low_precision(dtype: np.dtype) -> bool:
    return dtype.name in ("float16", "bfloat16") or dtype.name.startswith(("float8", "float4"))


def compute_dtype(dtype) -> np.dtype:
    """The dtype a float kernel computes in: float32 for float16/bfloat16, else the dtype itself."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if _is_low_precision(dtype) else dtype


def upcast(x: np.ndarray) -> np.ndarray:
    """x in its compute dtype (no copy when already there)."""
    return x.astype(compute_dtype(x.dtype), copy=False)


def pad_spatial(x: np.ndarray, pads, value=0) -> np.ndarray:
    """Pad the trailing len(pads)//2 axes by ONNX-ordered pads (begins..., ends...)."""
    n = len(pads) // 2
    if not any(pads):
        return x
    widths = [(0, 0)] * (x.ndim - n) + [(pads[i], pads[n + i]) for i in range(n)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def taps(win: Window):
    """Every kernel position as a tuple of per-axis offsets, in row-major order."""
    return itertools.product(*(range(k) for k in win.kernel))


def tap_slices(win: Window, tap, out) -> tuple:
    """Slices of a padded input that one kernel tap reads for every output position."""
    return tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                 for t, d, s, o in zip(tap, win.dilations, win.strides, out))


def window_view(xp: np.ndarray, win: Window, out) -> np.ndarray:
    """Read-only view (…, *out, *kernel) of every window of a padded input; no copy."""
    n = len(win.kernel)
    axes = tuple(range(xp.ndim - n, xp.ndim))
    extents = tuple(win.extent(i) for i in range(n))
    view = sliding_window_view(xp, extents, axis=axes)
    index = (Ellipsis,) + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, win.strides)) \
        + tuple(slice(None, None, d) for d in win.dilations)
    return view[index]
