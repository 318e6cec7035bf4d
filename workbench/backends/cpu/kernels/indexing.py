"""Indexing kernels: Gather, GatherElements, GatherND, ScatterND, ScatterElements, Scatter, OneHot,
TopK, NonZero, Unique, Compress."""
from __future__ import annotations

import numpy as np

from ..registry import kernel


def _wrap(indices, size):
    """ONNX indices may be negative (counted from the end)."""
    indices = np.asarray(indices, dtype=np.int64)
    return np.where(indices < 0, indices + size, indices)


@kernel("Gather")
def gather(data, indices, *, axis=0):
    return np.take(data, _wrap(indices, data.shape[axis]), axis=axis)


@kernel("GatherElements")
def gather_elements(data, indices, *, axis=0):
    return np.take_along_axis(data, _wrap(indices, data.shape[axis]), axis=axis)


@kernel("GatherND")
def gather_nd(data, indices, *, batch_dims=0):
    b, depth = batch_dims, indices.shape[-1]
    batch = int(np.prod(data.shape[:b]))
    tail = data.shape[b + depth:]
    flat = data.reshape((batch,) + data.shape[b:])
    idx = _wrap(indices, np.array(data.shape[b:b + depth])).reshape(batch, -1, depth)
    picked = flat[(np.arange(batch)[:, None],) + tuple(idx[..., j] for j in range(depth))]
    return picked.reshape(indices.shape[:-1] + tail)


_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_into(data, where, updates, reduction):
    """A copy of data with updates written (or reduced, duplicates included) at index tuple `where`."""
    out = data.copy()
    if reduction in (None, "none"):
        out[where] = updates
    else:
        _REDUCE[reduction].at(out, where, updates)
    return out


@kernel("ScatterND")
def scatter_nd(data, indices, updates, *, reduction="none"):
    depth = indices.shape[-1]
    idx = _wrap(indices, np.array(data.shape[:depth]))
    return _scatter_into(data, tuple(idx[..., j] for j in range(depth)), updates, reduction)


@kernel("ScatterElements")
def scatter_elements(data, indices, updates, *, axis=0, reduction="none"):
    axis = axis % data.ndim
    where = list(np.indices(indices.shape, sparse=True))
    where[axis] = _wrap(indices, data.shape[axis])
    return _scatter_into(data, tuple(where), updates, reduction)


@kernel("Scatter")
def scatter(data, indices, updates, *, axis=0):
    return scatter_elements(data, indices, updates, axis=axis)


@kernel("OneHot")
def one_hot(indices, depth, values, *, axis=-1):
    depth = int(np.ravel(depth)[0])
    axis = axis % (indices.ndim + 1)
    # out-of-range indices (after wrapping negatives) match no position: all off
    wrapped = np.expand_dims(np.where(indices < 0, indices + depth, indices), axis)
    positions = np.arange(depth).reshape((-1,) + (1,) * (indices.ndim - axis))
    return np.where(wrapped == positions, values[1], values[0]).astype(values.dtype)


@kernel("TopK")
def top_k(x, k_input=None, *, axis=-1, largest=1, sorted=1, k=None):  # noqa: A002 - ONNX's name
    count = int(np.ravel(k_input)[0]) if k_input is not None else int(k)
    axis = axis % x.ndim
    if largest:
        # ties keep the lower index first: stable-sort the reversed axis, read it backwards
        n = x.shape[axis]
        order = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
        order = (n - 1 - np.flip(order, axis))
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    order = np.take(order, np.arange(count), axis=axis)
    return np.take_along_axis(x, order, axis=axis), order.astype(np.int64)


@kernel("NonZero")
def non_zero(x):
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@kernel("Unique")
def unique(x, *, axis=None, sorted=1):  # noqa: A002 - ONNX's name
    y, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True, return_counts=True,
                                          axis=axis)
    inverse = inverse.reshape(-1)
    if not sorted:
        # reorder the unique entries by first occurrence
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        y = np.take(y, order, axis=0 if axis is None else axis)
        first, inverse, counts = first[order], rank[inverse], counts[order]
    return y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)


@kernel("Compress")
def compress(x, condition, *, axis=None):
    return np.compress(np.asarray(condition, dtype=bool), x, axis=axis)
