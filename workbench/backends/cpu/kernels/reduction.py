"""NumPy kernels of reductions (Reduce*), ArgMax/ArgMin, CumSum and CumProd.

Reductions of narrow floats accumulate in float32 (see elementwise.widen); reducing an empty
set gives the reduction's identity (0 for sums, 1 for products, -inf/+inf for max/min,
-inf for the log-sums), as ONNX >= 18 specifies.
"""
from __future__ import annotations

import math

import numpy as np

from ....ir.dims import normalize_axis
from ....ir.opdefs.reduction import REDUCTIONS, reduced_axes
from ..registry import kernel
from .elementwise import widen


def _lowest(dtype):
    """The identity of max over `dtype`: -inf, the smallest integer, or False."""
    if dtype == bool:
        return False
    return np.iinfo(dtype).min if dtype.kind in "iu" else -np.inf


def _highest(dtype):
    if dtype == bool:
        return True
    return np.iinfo(dtype).max if dtype.kind in "iu" else np.inf


def _log_sum_exp(x, axis, keepdims):
    peak = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    peak = np.where(np.isfinite(peak), peak, 0)  # all -inf (or empty) slices: exp(-inf - 0) = 0
    out = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return out if keepdims else np.squeeze(out, axis=axis)


def _mean(x, axis, keepdims):
    """Sum over count: np.mean warns on empty sets, whose mean is NaN (0/0) here."""
    count = math.prod(x.shape[a] for a in axis)
    total = np.sum(x, axis=axis, keepdims=keepdims, dtype=np.float64 if x.dtype.kind in "iu" else None)
    return total / count


_REDUCERS = {
    "ReduceSum": np.sum,
    "ReduceMean": _mean,
    "ReduceMax": lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims, initial=_lowest(x.dtype)),
    "ReduceMin": lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims, initial=_highest(x.dtype)),
    "ReduceProd": np.prod,
    "ReduceL1": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "ReduceL2": lambda x, axis, keepdims: np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims)),
    "ReduceSumSquare": lambda x, axis, keepdims: np.sum(np.square(x), axis=axis, keepdims=keepdims),
    "ReduceLogSum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "ReduceLogSumExp": _log_sum_exp,
}
assert set(_REDUCERS) == set(REDUCTIONS), "every reduction op spec needs a kernel"


def _reduction(reducer):
    """Kernel of a Reduce op; axes come from the input (new opsets) or the attribute (old ones)."""

    def run(data, axes_input=None, *, keepdims=1, axes=None, noop_with_empty_axes=0):
        # no axes with noop_with_empty_axes: folded == (), and the elementwise part still applies
        # (ReduceSumSquare squares, ReduceL1 takes absolute values), as ONNX says
        folded = reduced_axes(data.ndim, axes_input, axes, noop_with_empty_axes)
        (x,) = widen(data)
        with np.errstate(all="ignore"):
            out = reducer(x, axis=folded, keepdims=bool(keepdims))
        return np.asarray(out).astype(data.dtype, copy=False)

    return run


for _name, _fn in _REDUCERS.items():
    kernel(_name)(_reduction(_fn))


def _arg_extreme(find):
    """Kernel of ArgMax/ArgMin: int64 indices; ties give the first index, or the last on request."""

    def run(data, *, axis=0, keepdims=1, select_last_index=0):
        (x,) = widen(data)
        axis = normalize_axis(axis, x.ndim)
        if select_last_index:
            flipped = find(np.flip(x, axis), axis=axis, keepdims=bool(keepdims))
            return (x.shape[axis] - 1 - flipped).astype(np.int64)
        return np.asarray(find(x, axis=axis, keepdims=bool(keepdims))).astype(np.int64)

    return run


kernel("ArgMax")(_arg_extreme(np.argmax))
kernel("ArgMin")(_arg_extreme(np.argmin))


def _cumulative(accumulate, identity: int):
    """Kernel of a running reduction along `axis` (CumSum, CumProd): exclusive leaves out the current
    element (starting from the identity), reverse runs backwards."""

    def run(x: np.ndarray, axis: np.ndarray, *, exclusive=0, reverse=0) -> np.ndarray:
        a = normalize_axis(int(np.asarray(axis).reshape(-1)[0]), x.ndim)
        (w,) = widen(x)
        if reverse:
            w = np.flip(w, a)
        out = accumulate(w, axis=a, dtype=w.dtype)
        if exclusive:  # shift by one along the axis, starting from the identity
            head = np.full_like(np.take(out, [0], axis=a), identity)
            out = np.concatenate([head, np.take(out, range(out.shape[a] - 1), axis=a)], axis=a)
        if reverse:
            out = np.flip(out, a)
        return out.astype(x.dtype)

    return run


kernel("CumSum")(_cumulative(np.cumsum, 0))
kernel("CumProd")(_cumulative(np.cumprod, 1))
