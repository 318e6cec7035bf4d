"""Pooling: MaxPool, AveragePool, LpPool, their Global forms, and MaxUnpool."""
from __future__ import annotations

from .. import dims, windows
from ..ops import Info, op
from ..rules import symbolic_value
from ...errors import ShapeError

_WINDOW_ATTRS = dict(auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
                     strides=None)


def pool_shape(x: Info, *, auto_pad, ceil_mode, dilations, kernel_shape, pads, strides,
               what: str) -> Info:
    """(N, C, *out_spatial) of a windowed pooling op."""
    if not kernel_shape:
        raise ShapeError(f"{what}: attribute kernel_shape is required")
    if x.shape is None:
        return Info(x.dtype, None)
    if len(x.shape) != len(kernel_shape) + 2:
        raise ShapeError(f"{what}: X of shape {x.shape} needs {len(x.shape) - 2} kernel dims, "
                         f"kernel_shape is {list(kernel_shape)}")
    win = windows.window(kernel_shape, strides, dilations, pads, what=what)
    return Info(x.dtype, (*x.shape[:2], *windows.out_dims(x.shape[2:], win, auto_pad, ceil_mode, what)))


@op("MaxPool", since=12, storage_order=0, _indices=1, **_WINDOW_ATTRS)
def max_pool(x, *, storage_order, _indices, **attrs):
    """Y and (optional) Indices: flat int64 positions of each maximum in X.

    Hidden attribute `_indices`: a parser may set 0 when the node has no Indices output, so the
    kernel skips computing them (about 4x the cost of Y alone).
    """
    y = pool_shape(x, what="MaxPool", **attrs)
    return (y, Info("int64", y.shape)) if _indices else y


@op("AveragePool", since=19, count_include_pad=0, **_WINDOW_ATTRS)
def average_pool(x, *, count_include_pad, **attrs):
    """Y (N, C, *out_spatial)."""
    return pool_shape(x, what="AveragePool", **attrs)


@op("LpPool", since=18, p=2, **_WINDOW_ATTRS)
def lp_pool(x, *, p, **attrs):
    """Y (N, C, *out_spatial)."""
    return pool_shape(x, what="LpPool", **attrs)


def global_pool_shape(x: Info) -> Info:
    """(N, C, 1, 1, ...): every spatial dim reduced."""
    if x.shape is None:
        return Info(x.dtype, None)
    return Info(x.dtype, (*x.shape[:2], *(1,) * (len(x.shape) - 2)))


@op("GlobalAveragePool", since=1)
def global_average_pool(x):
    """Y (N, C, 1, ...)."""
    return global_pool_shape(x)


@op("GlobalMaxPool", since=1)
def global_max_pool(x):
    """Y (N, C, 1, ...)."""
    return global_pool_shape(x)


@op("GlobalLpPool", since=2, p=2)
def global_lp_pool(x, *, p):
    """Y (N, C, 1, ...)."""
    return global_pool_shape(x)


@op("MaxUnpool", since=9, kernel_shape=None, pads=None, strides=None)
def max_unpool(x, indices, output_shape=None, *, kernel_shape, pads, strides):
    """Y: output_shape when given, else (N, C, *(in - 1) * stride - pads + kernel)."""
    if not kernel_shape:
        raise ShapeError("MaxUnpool: attribute kernel_shape is required")
    if output_shape is not None:
        value = symbolic_value(output_shape)
        if value is not None:
            return Info(x.dtype, tuple(value))
        rank = None if x.shape is None else len(x.shape)
        return Info(x.dtype, None if rank is None else tuple(dims.fresh("unpool") for _ in range(rank)))
    if x.shape is None:
        return Info(x.dtype, None)
    win = windows.window(kernel_shape, strides, None, pads, what="MaxUnpool")
    return Info(x.dtype, (*x.shape[:2], *windows.unpool_dims(x.shape[2:], win)))
