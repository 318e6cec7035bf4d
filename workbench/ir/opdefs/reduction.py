"""Shape rules of reductions (Reduce*), ArgMax/ArgMin, CumSum and CumProd.

Reduce axes come as an input (ReduceSum >= 13, the others >= 18) or as the `axes` attribute
before that; an axes input that is not a build-time constant leaves the reduced dims unknown.
"""
from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from .. import dims
from ..ops import Info, op
from ..rules import same_as

REDUCTIONS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def reduced_axes(rank: int, axes_input, axes_attr, noop_with_empty_axes) -> tuple | None:
    """The sorted, normalized axes a reduction folds; () for a no-op; None if not known yet.

    axes_input: the axes tensor's value (ndarray) when it is an input, else None.
    """
    axes = axes_attr if axes_input is None else axes_input
    if axes is None or len(np.atleast_1d(axes)) == 0:
        return () if noop_with_empty_axes else tuple(range(rank))
    return tuple(sorted({dims.normalize_axis(int(a), rank, "reduce axis") for a in np.atleast_1d(axes)}))


def _reduce_rule(data: Info, axes_in: Info | None = None, *, keepdims, axes, noop_with_empty_axes) -> Info:
    """Reduction: the folded dims become 1 (keepdims) or disappear."""
    if data.shape is None:
        return Info(data.dtype, None)
    rank = len(data.shape)
    if axes_in is not None and not isinstance(axes_in.value, np.ndarray):
        return _unknown_axes(data, axes_in, keepdims)
    folded = reduced_axes(rank, None if axes_in is None else axes_in.value, axes, noop_with_empty_axes)
    shape = tuple(1 if i in folded else d for i, d in enumerate(data.shape) if keepdims or i not in folded)
    return Info(data.dtype, shape)


def _unknown_axes(data: Info, axes_in: Info, keepdims) -> Info:
    """Axes known only at run time: the rank is known when keepdims or the axes count is."""
    rank = len(data.shape)
    if keepdims:
        return Info(data.dtype, tuple(dims.fresh("reduced") for _ in range(rank)))
    if axes_in.shape is None or len(axes_in.shape) != 1 or not isinstance(axes_in.shape[0], int):
        return Info(data.dtype, None)
    return Info(data.dtype, tuple(dims.fresh("reduced") for _ in range(rank - axes_in.shape[0])))


for _name in REDUCTIONS:
    op(_name, since=1, keepdims=1, axes=None, noop_with_empty_axes=0)(_reduce_rule)


def _arg_rule(data: Info, *, axis, keepdims, select_last_index) -> Info:
    """Index of the extreme value along `axis`, as int64."""
    if data.shape is None:
        return Info("int64", None)
    a = dims.normalize_axis(axis, len(data.shape))
    shape = tuple(1 if i == a else d for i, d in enumerate(data.shape) if keepdims or i != a)
    return Info("int64", shape)


for _name in ("ArgMax", "ArgMin"):
    op(_name, since=1, axis=0, keepdims=1, select_last_index=0)(_arg_rule)


def cumulative(name: str):
    """Shape rule of a running reduction (CumSum, CumProd): x's shape and dtype; axis is a scalar."""

    def rule(x: Info, axis: Info, *, exclusive, reverse) -> Info:
        if axis.shape is not None and len(axis.shape) > 1:
            raise ShapeError(f"{name} axis must be a scalar or 1-element tensor, got shape {axis.shape}")
        return same_as(x)

    rule.__doc__ = f"{name}: running reduction along one axis; same shape and dtype."
    return rule


op("CumSum", since=11, exclusive=0, reverse=0)(cumulative("CumSum"))
op("CumProd", since=26, exclusive=0, reverse=0)(cumulative("CumProd"))
