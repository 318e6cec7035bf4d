"""Resize (opsets 10..19: scales or sizes, axes, keep_aspect_ratio_policy) and the older Upsample."""
from __future__ import annotations

import math

import numpy as np

from .. import dims
from ..ops import Info, op
from ...errors import ShapeError


def _present(info: Info | None) -> bool:
    """An optional input given and not empty (exporters often pass an empty scales tensor)."""
    return info is not None and not (info.shape is not None and len(info.shape) == 1 and info.shape[0] == 0)


def _scaled_dim(d, scale: float):
    """floor(d * scale); a symbolic d keeps a name only for whole-number scales."""
    if isinstance(d, int):
        return int(math.floor(d * scale))
    if float(scale).is_integer():
        return dims.mul(d, int(scale))
    return dims.fresh("resize")


def _unknown(x: Info) -> Info:
    return Info(x.dtype, None if x.shape is None else tuple(dims.fresh("resize") for _ in x.shape))


def _axes_of(x: Info, axes) -> list:
    rank = len(x.shape)
    return [dims.normalize_axis(a, rank, "Resize axes") for a in axes] if axes else list(range(rank))


def _from_scales(x: Info, scales: Info, axes) -> Info:
    if not isinstance(scales.value, np.ndarray):
        return _unknown(x)
    ax = _axes_of(x, axes)
    values = [float(s) for s in scales.value.reshape(-1)]
    if len(values) != len(ax):
        raise ShapeError(f"Resize: {len(values)} scales given for {len(ax)} axes of input {x.shape}")
    out = list(x.shape)
    for a, s in zip(ax, values):
        out[a] = _scaled_dim(out[a], s)
    return Info(x.dtype, tuple(out))


def _from_sizes(x: Info, sizes: Info, axes, policy: str) -> Info:
    value = sizes.value
    if value is None:
        return _unknown(x)
    wanted = [int(v) for v in value.reshape(-1)] if isinstance(value, np.ndarray) else list(value)
    ax = _axes_of(x, axes)
    if len(wanted) != len(ax):
        raise ShapeError(f"Resize: {len(wanted)} sizes given for {len(ax)} axes of input {x.shape}")
    out = list(x.shape)
    if policy == "stretch":
        for a, s in zip(ax, wanted):
            out[a] = s
        return Info(x.dtype, tuple(out))
    if not all(isinstance(v, int) for v in wanted + [x.shape[a] for a in ax]):
        return _unknown(x)
    ratios = [s / x.shape[a] for a, s in zip(ax, wanted)]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    for a in ax:
        out[a] = int(scale * x.shape[a] + 0.5)  # round half up, as the spec says
    return Info(x.dtype, tuple(out))


@op("Resize", since=19, antialias=0, axes=None, coordinate_transformation_mode="half_pixel",
    cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0, keep_aspect_ratio_policy="stretch",
    mode="nearest", nearest_mode="round_prefer_floor")
def resize(x, roi=None, scales=None, sizes=None, *, axes, keep_aspect_ratio_policy, **_):
    """Output shape from sizes, or floor(in * scale); the opset-10 form passes scales second."""
    if keep_aspect_ratio_policy not in ("stretch", "not_larger", "not_smaller"):
        raise ShapeError(f"Resize: keep_aspect_ratio_policy {keep_aspect_ratio_policy!r} is not one of "
                         f"stretch, not_larger, not_smaller")
    if x.shape is None:
        return Info(x.dtype, None)
    if _present(sizes):
        return _from_sizes(x, sizes, axes, keep_aspect_ratio_policy)
    if _present(scales):
        return _from_scales(x, scales, axes)
    if _present(roi):  # Resize-10: (X, scales)
        return _from_scales(x, roi, None)
    raise ShapeError("Resize: give either scales or sizes")


@op("Upsample", since=9, mode="nearest", scales=None)
def upsample(x, scales_input=None, *, mode, scales):
    """floor(in * scale) per axis; scales is an input from opset 9, an attribute before."""
    if x.shape is None:
        return Info(x.dtype, None)
    if scales_input is None:
        if scales is None:
            raise ShapeError("Upsample: give scales (an input from opset 9, an attribute before)")
        return _from_scales(x, Info("float32", (len(scales),), np.asarray(scales, np.float32)), None)
    return _from_scales(x, scales_input, None)
