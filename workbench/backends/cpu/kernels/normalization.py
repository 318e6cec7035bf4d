"""Normalization kernels. Statistics are computed in float32 for float16/bfloat16 inputs."""
from __future__ import annotations

import numpy as np

from ....errors import ShapeError
from ....ir.opdefs.normalization import stats_dtype
from ..registry import kernel
from ..windowing import compute_dtype, upcast


def _per_channel(v, ndim: int, dtype) -> np.ndarray:
    """A (C,) vector shaped (C, 1, ...) to broadcast against (N, C, *spatial)."""
    return np.asarray(v).astype(dtype, copy=False).reshape(-1, *(1,) * (ndim - 2))


def _standardize(x: np.ndarray, axes: tuple, epsilon: float):
    """(x - mean) * inv_std over `axes`, plus mean and inv_std (keepdims)."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(var + x.dtype.type(epsilon))
    return centered * inv_std, mean, inv_std


@kernel("BatchNormalization")
def batch_normalization(x, scale, b, input_mean, input_var, *, epsilon, momentum, training_mode):
    """ONNX BatchNormalization-15: inference, or training mode with updated running statistics."""
    ct = compute_dtype(x.dtype)
    xc = upcast(x)
    mean, var = input_mean.astype(ct), input_var.astype(ct)
    if training_mode:
        axes = (0, *range(2, x.ndim))
        mean, var = xc.mean(axis=axes), xc.var(axis=axes)
    inv_std = 1 / np.sqrt(var + ct.type(epsilon))
    # fold into one multiply-add per element: y = x*k + (b - mean*k)
    k = scale.astype(ct) * inv_std
    y = (xc * _per_channel(k, x.ndim, ct) + _per_channel(b.astype(ct) - mean * k, x.ndim, ct))
    y = y.astype(x.dtype, copy=False)
    if not training_mode:
        return y
    m = ct.type(momentum)
    running_mean = input_mean.astype(ct) * m + mean * (1 - m)
    running_var = input_var.astype(ct) * m + var * (1 - m)
    return y, running_mean.astype(input_mean.dtype), running_var.astype(input_var.dtype)


def _trailing_axes(x, axis: int, what: str) -> tuple:
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{what}: axis {axis} is out of range for rank {x.ndim}")
    return tuple(range(axis % x.ndim, x.ndim))


@kernel("LayerNormalization")
def layer_normalization(x, scale, b=None, *, axis, epsilon, stash_type):
    """ONNX LayerNormalization: Y, Mean, InvStdDev (normalized over axes [axis, rank))."""
    xc = upcast(x)
    normed, mean, inv_std = _standardize(xc, _trailing_axes(x, axis, "LayerNormalization"), epsilon)
    y = normed * upcast(scale)
    if b is not None:
        y += upcast(b)
    sd = stats_dtype(x.dtype.name)
    return y.astype(x.dtype, copy=False), mean.astype(sd, copy=False), inv_std.astype(sd, copy=False)


@kernel("RMSNormalization")
def rms_normalization(x, scale, *, axis, epsilon, stash_type):
    """ONNX RMSNormalization: x / sqrt(mean(x^2) + eps) * scale."""
    xc = upcast(x)
    ms = np.mean(xc * xc, axis=_trailing_axes(x, axis, "RMSNormalization"), keepdims=True)
    y = xc / np.sqrt(ms + xc.dtype.type(epsilon)) * upcast(scale)
    return y.astype(x.dtype, copy=False)


@kernel("InstanceNormalization")
def instance_normalization(x, scale, b, *, epsilon):
    """ONNX InstanceNormalization: per (N, C) over the spatial axes."""
    xc = upcast(x)
    normed, _, _ = _standardize(xc, tuple(range(2, x.ndim)), epsilon)
    y = normed * _per_channel(scale, x.ndim, xc.dtype) + _per_channel(b, x.ndim, xc.dtype)
    return y.astype(x.dtype, copy=False)


@kernel("GroupNormalization")
def group_normalization(x, scale, b, *, epsilon, num_groups, stash_type, _opset):
    """ONNX GroupNormalization; opset 18 gives scale/bias per group, opset 21 per channel."""
    n, c = x.shape[:2]
    if c % num_groups:
        raise ShapeError(f"GroupNormalization: {c} channels are not divisible by num_groups={num_groups}")
    xc = upcast(x)
    grouped = xc.reshape(n, num_groups, -1)
    normed, _, _ = _standardize(grouped, (2,), epsilon)
    normed = normed.reshape(x.shape)
    scale, b = upcast(scale), upcast(b)
    if _opset < 21 or (scale.size == num_groups != c):
        scale, b = np.repeat(scale, c // num_groups), np.repeat(b, c // num_groups)
    y = normed * _per_channel(scale, x.ndim, xc.dtype) + _per_channel(b, x.ndim, xc.dtype)
    return y.astype(x.dtype, copy=False)


@kernel("LpNormalization")
def lp_normalization(x, *, axis, p):
    """ONNX LpNormalization (p = 1 or 2); a zero norm gives 0."""
    xc = upcast(x)
    norm = np.abs(xc).sum(axis=axis, keepdims=True) if p == 1 else \
        np.sqrt((xc * xc).sum(axis=axis, keepdims=True))
    safe = np.where(norm == 0, xc.dtype.type(1), norm)
    return np.where(norm == 0, xc.dtype.type(0), xc / safe).astype(x.dtype, copy=False)


@kernel("MeanVarianceNormalization")
def mean_variance_normalization(x, *, axes):
    """ONNX MeanVarianceNormalization: (x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9)."""
    xc = upcast(x)
    axes = tuple(axes)
    mean = xc.mean(axis=axes, keepdims=True)
    std = np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) - mean * mean)
    return ((xc - mean) / (std + xc.dtype.type(1e-9))).astype(x.dtype, copy=False)


@kernel("LRN")
def lrn(x, *, alpha, beta, bias, size):
    """ONNX LRN: across-channel window of `size` (floor((size-1)/2) before, the rest after)."""
    xc = upcast(x)
    sq = xc * xc
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    c = x.shape[1]
    # window sums along C: `size` shifted slices of the zero-padded squares
    padded = np.pad(sq, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    window = sum(padded[:, i:i + c] for i in range(size))
    ct = xc.dtype.type
    y = xc / (ct(bias) + ct(alpha / size) * window) ** ct(beta)
    return y.astype(x.dtype, copy=False)
