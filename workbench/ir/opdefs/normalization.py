"""Normalizations: BatchNormalization, LayerNormalization, InstanceNormalization, GroupNormalization,
RMSNormalization, LpNormalization, MeanVarianceNormalization, LRN."""
from __future__ import annotations

from .. import dims
from ..ops import Info, op
from ..rules import same_as
from ...errors import ShapeError


def stats_dtype(dtype: str) -> str:
    """dtype of saved statistics (Mean, InvStdDev): float32 for half types (stash_type=1), else dtype."""
    return "float32" if dtype in ("float16", "bfloat16") else dtype


@op("BatchNormalization", since=15, epsilon=1e-5, momentum=0.9, training_mode=0)
def batch_normalization(x, scale, b, input_mean, input_var, *, epsilon, momentum, training_mode):
    """Y, and with training_mode=1 the updated running mean and variance."""
    if not training_mode:
        return same_as(x)
    c = x.shape[1] if x.shape is not None and len(x.shape) > 1 else dims.fresh("c")
    return same_as(x), Info(input_mean.dtype, (c,)), Info(input_var.dtype, (c,))


def _reduced_stats(x: Info, axis: int, what: str):
    """Infos of Mean/InvStdDev-like outputs: X's shape with the normalized axes set to 1."""
    if x.shape is None:
        return Info(stats_dtype(x.dtype), None)
    axis = dims.normalize_axis(axis, len(x.shape), f"{what} axis")
    return Info(stats_dtype(x.dtype), (*x.shape[:axis], *(1,) * (len(x.shape) - axis)))


@op("LayerNormalization", since=17, axis=-1, epsilon=1e-5, stash_type=1)
def layer_normalization(x, scale, b=None, *, axis, epsilon, stash_type):
    """Y, Mean and InvStdDev (the last two with the normalized axes kept as 1)."""
    stats = _reduced_stats(x, axis, "LayerNormalization")
    return same_as(x), stats, stats


@op("RMSNormalization", since=23, axis=-1, epsilon=1e-5, stash_type=1)
def rms_normalization(x, scale, *, axis, epsilon, stash_type):
    """Y, X's shape (normalized over axes [axis, rank))."""
    if x.shape is not None:
        dims.normalize_axis(axis, len(x.shape), "RMSNormalization axis")
    return same_as(x)


@op("InstanceNormalization", since=6, epsilon=1e-5)
def instance_normalization(x, scale, b, *, epsilon):
    """Y, X's shape."""
    return same_as(x)


@op("GroupNormalization", since=21, epsilon=1e-5, num_groups=None, stash_type=1, _opset=21)
def group_normalization(x, scale, b, *, epsilon, num_groups, stash_type, _opset):
    """Y; scale and bias are per channel (opset 21) or per group (opset 18, `_opset` < 21)."""
    if num_groups is None:
        raise ShapeError("GroupNormalization: attribute num_groups is required")
    if x.shape is not None and isinstance(x.shape[1], int) and x.shape[1] % num_groups:
        raise ShapeError(f"GroupNormalization: {x.shape[1]} channels are not divisible by "
                         f"num_groups={num_groups}")
    return same_as(x)


@op("LpNormalization", since=1, axis=-1, p=2)
def lp_normalization(x, *, axis, p):
    """Y, X's shape; p must be 1 or 2."""
    if p not in (1, 2):
        raise ShapeError(f"LpNormalization: p must be 1 or 2, got {p}")
    return same_as(x)


@op("MeanVarianceNormalization", since=13, axes=(0, 2, 3))
def mean_variance_normalization(x, *, axes):
    """Y, X's shape."""
    return same_as(x)


@op("LRN", since=13, alpha=1e-4, beta=0.75, bias=1.0, size=None)
def lrn(x, *, alpha, beta, bias, size):
    """Y, X's shape; size is required."""
    if size is None:
        raise ShapeError("LRN: attribute size is required")
    return same_as(x)
