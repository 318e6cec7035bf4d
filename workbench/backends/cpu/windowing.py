"""NumPy helpers for sliding-window kernels (convolution, pooling): compute dtypes, taps, layouts.

Spatial axes are the trailing ones (N, C, *spatial). A "tap" is one position inside the kernel;
looping over taps (9 for a 3x3 kernel) with whole-tensor operations keeps every kernel vectorised.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np

from ...ir.windows import Window


@functools.lru_cache(maxsize=None)
def compute_dtype(dtype) -> np.dtype:
    """The dtype a float kernel computes in: float32 for float16/bfloat16 (and narrower), else the dtype."""
    dtype = np.dtype(dtype)
    low = dtype.name in ("float16", "bfloat16") or dtype.name.startswith(("float8", "float4"))
    return np.dtype(np.float32) if low else dtype


def upcast(x: np.ndarray) -> np.ndarray:
    """x in its compute dtype (no copy when already there)."""
    return x.astype(compute_dtype(x.dtype), copy=False)


def taps(win: Window):
    """Every kernel position as a tuple of per-axis offsets, in row-major order."""
    return itertools.product(*(range(k) for k in win.kernel))


def tap_ranges(t: int, axis: int, win: Window, size: int, out: int):
    """(outputs lo:hi, input slice) where kernel tap t along `axis` reads real input, not padding."""
    s, offset = win.strides[axis], t * win.dilations[axis] - win.pads[axis]  # output i reads i*s + offset
    lo, hi = max(0, -(offset // s)), min(out, (size - 1 - offset) // s + 1)
    return (lo, hi), slice(lo * s + offset, (hi - 1) * s + offset + 1, s)


def separable_reduce(x: np.ndarray, win: Window, out, ufunc, fill=0) -> np.ndarray:
    """ufunc (np.maximum, np.add) over every window, one spatial axis at a time: 2k taps, not k*k.

    Padding is never materialised: each tap reduces only the outputs whose input it really reads
    (`fill` is what an output reading only padding would hold). The leading axes go first: their
    slices are whole contiguous rows, and each pass shrinks the data before the last axis is read.
    """
    acc = x
    for first, rest, full in _reduce_plan(x.shape, win, tuple(out)):
        if len(first) == 2:  # the first two make the new array: one pass saved over copy-then-reduce
            reduced = ufunc(acc[first[0]], acc[first[1]])
        elif first:
            reduced = acc[first[0]].copy()
        else:
            reduced = np.full(full, fill, dtype=acc.dtype)
        for dst, src in rest:
            part = reduced[dst]
            ufunc(part, acc[src], out=part)
        acc = reduced
    return acc


@functools.lru_cache(maxsize=256)
def _reduce_plan(shape: tuple, win: Window, out: tuple) -> tuple:
    """separable_reduce's index work, done once per geometry: per spatial axis, (source indices of the
    (up to two) taps that start the reduced array, [(destination, source) of every other tap], the
    reduced array's shape)."""
    plan = []
    shape = list(shape)
    for a, (k, o) in enumerate(zip(win.kernel, out)):
        pre = (slice(None),) * (2 + a)
        ranges = [tap_ranges(t, a, win, shape[2 + a], o) for t in range(k)]
        ranges = [(lo, hi, src) for (lo, hi), src in ranges if hi > lo]
        whole = [r for r in ranges if r[:2] == (0, o)]  # taps reading real input for every output
        first = tuple((*pre, r[2]) for r in whole[:2])
        for r in whole[:2]:
            ranges.remove(r)
        rest = tuple(((*pre, slice(lo, hi)), (*pre, src)) for lo, hi, src in ranges)
        shape[2 + a] = o
        plan.append((first, rest, tuple(shape)))
    return tuple(plan)


class FlatTaps(NamedTuple):
    """A padded input laid out so that each kernel tap reads ONE contiguous run per (image, channel).

    buf is (N, C, phases, F): the padded input split into its stride phases (one phase at stride 1,
    where no split is needed), each flattened row-major with its own row pitch. Tap k reads
    buf[:, :, phase[k], offset[k]:offset[k] + length]; that run holds the tap's value for every
    output position, laid out on the grid (out[0], pitch...) whose extra columns crop() drops.
    Sliding-window kernels then loop over taps with contiguous whole-tensor operations (or BLAS
    calls straight on these views), never 2-D strided slices.
    """

    buf: np.ndarray
    phase: tuple
    offset: tuple
    length: int
    grid: tuple  # (out[0], E[1], ..., E[n-1]): the run's shape before cropping
    out: tuple
    cut: tuple | None = None  # crop()'s index into the grid (None: nothing to drop), built once per layout

    def run(self, k: int) -> np.ndarray:
        """Tap k's (N, C, length) view."""
        o = self.offset[k]
        return self.buf[:, :, self.phase[k], o:o + self.length]

    def crop(self, y: np.ndarray) -> np.ndarray:
        """The (..., *out) view of a (..., length) array laid out on the run grid."""
        grid = y.reshape(y.shape[:-1] + self.grid)
        return grid if self.cut is None else grid[self.cut]


def flat_taps(x: np.ndarray, win: Window, out, fill=0) -> FlatTaps:
    """Pad x (N, C, *S) by win.pads with `fill` and lay it out as FlatTaps (one pass over x).

    Along axis a, phase p holds padded positions p, p + s, p + 2s, ...; a tap at kernel offset
    t*d lands in phase (t*d) % s at index (t*d) // s, so every tap is a shifted copy of one phase.
    The last axes' pitch E = out + largest shift; one extra row along the first axis lets the
    runs of the last taps stay inside the buffer.
    """
    out = tuple(out)
    shape, copies, phase, offset, grid = _flat_layout(x.shape, win, out)
    buf = np.full((*x.shape[:2], *shape), fill, dtype=x.dtype)
    for dst, src in copies:
        buf[dst] = x[src]
    return FlatTaps(buf.reshape(*x.shape[:2], math.prod(win.strides), -1), phase, offset,
                    math.prod(grid), grid, out, _cut(out))


@functools.lru_cache(maxsize=256)
def _cut(out: tuple):
    """FlatTaps.crop's index: the first `out` entries of every grid axis but the first."""
    return (Ellipsis, *(slice(0, o) for o in out[1:])) if len(out) > 1 else None


@functools.lru_cache(maxsize=256)
def _flat_layout(x_shape, win: Window, out):
    """(buffer shape after N, C; [(destination, source) index pairs]; per tap phase and offset; run grid)."""
    strides, shifts = win.strides, [(k - 1) * d for k, d in zip(win.kernel, win.dilations)]
    extent = [o + sh // s for o, sh, s in zip(out, shifts, strides)]
    extent[0] += 1
    copies = []
    for phase in itertools.product(*(range(s) for s in strides)):
        src, dst = [], []
        for p, s, e, pb, size in zip(phase, strides, extent, win.pads, x_shape[2:]):
            lo = max(0, -((p - pb) // s))  # first i with p + s*i - pb >= 0
            hi = min(e, (size - 1 + pb - p) // s + 1)  # one past the last i with p + s*i - pb < size
            src.append(slice(p + s * lo - pb, p + s * (hi - 1) - pb + 1, s) if hi > lo else slice(0, 0))
            dst.append(slice(lo, max(lo, hi)))
        copies.append(((slice(None), slice(None), *phase, *dst), (Ellipsis, *src)))
    pitch = [math.prod(extent[a + 1:]) for a in range(len(out))]
    mult = [math.prod(strides[a + 1:]) for a in range(len(out))]
    phase_of, offset_of = [], []
    for tap in taps(win):
        pos = [t * d for t, d in zip(tap, win.dilations)]
        phase_of.append(sum(q % s * m for q, s, m in zip(pos, strides, mult)))
        offset_of.append(sum(q // s * p for q, s, p in zip(pos, strides, pitch)))
    return (*strides, *extent), copies, tuple(phase_of), tuple(offset_of), (out[0], *extent[1:])
