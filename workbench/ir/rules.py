"""Building blocks shared by shape rules."""
from __future__ import annotations

import numpy as np

from . import dims
from .ops import Info


def same_as(x: Info, dtype: str | None = None) -> Info:
    """Output with x's shape (and dtype unless given): unary elementwise ops."""
    return Info(dtype or x.dtype, x.shape)


def broadcast_of(*xs: Info, dtype: str | None = None) -> Info:
    """Output of a broadcasting elementwise op; rank unknown if any input's is."""
    present = [x for x in xs if x is not None]
    if any(x.shape is None for x in present):
        return Info(dtype or present[0].dtype, None)
    return Info(dtype or present[0].dtype, dims.broadcast(*(x.shape for x in present)))


def unknown(dtype: str, rank: int | None = None, prefix: str = "d") -> Info:
    """An output whose dims cannot be known before run time (e.g. NonZero)."""
    return Info(dtype, None if rank is None else tuple(dims.fresh(prefix) for _ in range(rank)))


# ---- known values of small integer tensors (shape arithmetic of torch exports) -------------------

# Constant int tensors up to this many elements are read as lists of dims.
_VALUE_LIMIT = 4096


def symbolic_value(info: Info | None) -> tuple | None:
    """The elements of a small int tensor of rank <= 1 as a tuple of Dims, or None when unknown.

    Accepts Info.value as a tuple of Dims (a shape tensor known symbolically; a 0-D one is a
    1-tuple) or as an integer ndarray of rank 0 or 1 (a constant).
    >>> symbolic_value(Info("int64", (2,), ("batch", 3)))  # ('batch', 3)
    """
    if info is None:
        return None
    value = info.value
    if isinstance(value, tuple):
        return value
    if (isinstance(value, np.ndarray) and value.ndim <= 1 and value.size <= _VALUE_LIMIT
            and (np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_)):
        return tuple(int(v) for v in value.reshape(-1))
    return None


def static_ints(info: Info | None) -> tuple | None:
    """The elements of a small int tensor when all are known ints (axes, pads, starts...), else None."""
    value = symbolic_value(info)
    if value is None or not all(isinstance(d, (int, np.integer)) for d in value):
        return None
    return tuple(int(d) for d in value)


def value_of(elements, scalar: bool = False, dtype: str = "int64"):
    """Info.value for an int tensor with these elements: an ndarray when all are ints, else a tuple."""
    elements = tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in elements)
    if all(isinstance(d, int) for d in elements):
        array = np.array(elements, dtype=dtype)
        return array.reshape(()) if scalar else array
    return elements


def shape_tensor(elements, scalar: bool = False, dtype: str = "int64") -> Info:
    """Info of a 1-D (or, with scalar=True, 0-D from a 1-tuple) int tensor whose elements are known."""
    elements = tuple(elements)
    return Info(dtype, () if scalar else (len(elements),), value_of(elements, scalar, dtype))
