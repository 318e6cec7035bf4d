"""Building blocks shared by shape rules."""
from __future__ import annotations

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
