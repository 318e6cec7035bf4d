"""Indexing: Gather, GatherElements, GatherND, ScatterND, ScatterElements, Scatter, OneHot, TopK,
NonZero, Unique, Compress.

Gather of a 1-D shape tensor with constant indices picks its (symbolic) dims.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op
from ..rules import same_as, shape_tensor, static_ints, symbolic_value, unknown


@op("Gather", since=13, axis=0)
def gather(data, indices, *, axis):
    """data.shape[:axis] + indices.shape + data.shape[axis+1:]; picks dims of a shape tensor."""
    if data.shape is None or indices.shape is None:
        return Info(data.dtype, None)
    axis = dims.normalize_axis(axis, len(data.shape), "Gather axis")
    value, picks = symbolic_value(data), static_ints(indices)
    if len(data.shape) == 1 and value is not None and picks is not None and len(indices.shape) <= 1:
        if any(not -len(value) <= i < len(value) for i in picks):
            raise ShapeError(f"Gather indices {list(picks)} are out of range for {len(value)} elements")
        return shape_tensor([value[i] for i in picks], scalar=not indices.shape, dtype=data.dtype)
    return Info(data.dtype, data.shape[:axis] + tuple(indices.shape) + data.shape[axis + 1:])


@op("GatherElements", since=13, axis=0)
def gather_elements(data, indices, *, axis):
    """Shape of the indices."""
    return Info(data.dtype, indices.shape)


@op("GatherND", since=13, batch_dims=0)
def gather_nd(data, indices, *, batch_dims):
    """indices.shape[:-1] + data.shape[batch_dims + indices.shape[-1]:]."""
    if data.shape is None or indices.shape is None or not isinstance(indices.shape[-1], int):
        return Info(data.dtype, None)
    depth = indices.shape[-1]
    if batch_dims + depth > len(data.shape):
        raise ShapeError(f"GatherND: index tuples of length {depth} after {batch_dims} batch dims "
                         f"exceed the rank of data {data.shape}")
    return Info(data.dtype, tuple(indices.shape[:-1]) + tuple(data.shape[batch_dims + depth:]))


def _scatter(data, indices, updates, **_):
    """Scatter ops write into a copy of data: same shape and dtype."""
    return same_as(data)


op("ScatterND", since=18, reduction="none")(_scatter)
op("ScatterElements", since=18, axis=0, reduction="none")(_scatter)
op("Scatter", since=11, axis=0)(_scatter)


@op("OneHot", since=11, axis=-1)
def one_hot(indices, depth, values, *, axis):
    """indices.shape with a new axis of size depth; dtype of values."""
    if indices.shape is None:
        return Info(values.dtype, None)
    rank = len(indices.shape) + 1
    axis = dims.normalize_axis(axis, rank, "OneHot axis")
    size = _scalar(depth)
    size = dims.fresh("onehot") if size is None else size
    return Info(values.dtype, indices.shape[:axis] + (size,) + indices.shape[axis:])


def _scalar(info):
    """The single element of a known scalar (or 1-element) tensor as a Dim, else None."""
    if isinstance(info.value, np.ndarray) and info.value.size == 1:
        return int(info.value.reshape(-1)[0])
    value = symbolic_value(info)
    return value[0] if value is not None and len(value) == 1 else None


@op("TopK", since=11, axis=-1, largest=1, sorted=1, k=None)
def top_k(x, k_input=None, *, axis, largest, sorted, k):  # noqa: A002 - ONNX's name
    """(values, int64 indices), x's shape with K along axis."""
    count = _scalar(k_input) if k_input is not None else k
    if x.shape is None:
        return Info(x.dtype, None), Info("int64", None)
    axis = dims.normalize_axis(axis, len(x.shape), "TopK axis")
    shape = x.shape[:axis] + (dims.fresh("topk") if count is None else count,) + x.shape[axis + 1:]
    return Info(x.dtype, shape), Info("int64", shape)


@op("NonZero", since=13)
def non_zero(x):
    """(rank, number of non-zeros) int64 indices; the count is known only at run time."""
    return unknown("int64", None) if x.shape is None else Info("int64", (len(x.shape), dims.fresh("nonzero")))


@op("Unique", since=11, axis=None, sorted=1)
def unique(x, *, axis, sorted):  # noqa: A002 - ONNX's name
    """(Y, indices, inverse_indices, counts); the number of unique entries is data-dependent."""
    count = dims.fresh("unique")
    if axis is None or x.shape is None:
        y = (count,) if axis is None else None
        inverse = (dims.prod(x.shape),) if axis is None and x.shape is not None else None
    else:
        axis = dims.normalize_axis(axis, len(x.shape), "Unique axis")
        y = x.shape[:axis] + (count,) + x.shape[axis + 1:]
        inverse = (x.shape[axis],)
    return Info(x.dtype, y), Info("int64", (count,)), Info("int64", inverse), Info("int64", (count,))


@op("Compress", since=11, axis=None)
def compress(x, condition, *, axis):
    """The entries (flattened when axis is None) whose condition is true; count known if condition is."""
    count = dims.fresh("compress")
    if isinstance(condition.value, np.ndarray):
        count = int(np.count_nonzero(condition.value))
    if axis is None:
        return Info(x.dtype, (count,))
    if x.shape is None:
        return Info(x.dtype, None)
    axis = dims.normalize_axis(axis, len(x.shape), "Compress axis")
    return Info(x.dtype, x.shape[:axis] + (count,) + x.shape[axis + 1:])
