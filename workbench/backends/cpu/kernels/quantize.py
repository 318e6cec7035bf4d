"""Quantization kernels: linear (de)quantization per tensor, per axis or per block, to integer
types (int2..int32, via ml_dtypes for the sub-byte ones) and to float8/float4."""
from __future__ import annotations

import ml_dtypes
import numpy as np

from ....errors import ShapeError
from ....ir.onnx_dtypes import numpy_dtype
from ..registry import kernel

_INT_LIKE = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2, ml_dtypes.uint2)}
_FLOAT8 = {np.dtype(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz,
                                 ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz)}


def broadcast_param(p: np.ndarray, shape: tuple, axis: int, block_size: int, what: str) -> np.ndarray:
    """A scale or zero point made broadcastable to x: scalar, per-axis (1-D) or blocked (same rank)."""
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    axis = axis % len(shape)
    if not block_size:
        if p.ndim != 1 or p.size != shape[axis]:
            raise ShapeError(f"{what}: per-axis parameter of shape {p.shape} does not match axis {axis} "
                             f"of input {shape}")
        return p.reshape([-1 if i == axis else 1 for i in range(len(shape))])
    full = np.repeat(p, block_size, axis=axis)[(slice(None),) * axis + (slice(0, shape[axis]),)]
    if full.shape != tuple(shape):
        raise ShapeError(f"{what}: blocked parameter of shape {p.shape} with block_size={block_size} "
                         f"does not tile input {shape} along axis {axis}")
    return full


@kernel("QuantizeLinear")
def quantize_linear(x, y_scale, y_zero_point=None, *, axis, block_size, output_dtype, precision, saturate):
    """ONNX QuantizeLinear: saturate(round_half_even(x / scale) + zero_point)."""
    what = "QuantizeLinear"
    target = y_zero_point.dtype if y_zero_point is not None else \
        (numpy_dtype(output_dtype) if output_dtype else np.dtype(np.uint8))
    scale = broadcast_param(y_scale, x.shape, axis, block_size, what)
    if precision:
        p = numpy_dtype(precision)
        scaled = x.astype(p) / scale.astype(p)
    else:
        scaled = x / scale
    zp = None if y_zero_point is None else broadcast_param(y_zero_point, x.shape, axis, block_size, what)
    if target in _INT_LIKE:
        q = np.rint(scaled.astype(np.float64))
        if zp is not None:
            q += zp.astype(np.float64)
        info = ml_dtypes.iinfo(target)
        return np.clip(q, info.min, info.max).astype(target)
    if target in _FLOAT8:
        if saturate:
            top = float(ml_dtypes.finfo(target).max)
            scaled = np.clip(scaled.astype(np.float32), -top, top)
        return scaled.astype(target)
    if target.name.startswith(("float4", "float6")):  # no inf/NaN encodings: the cast saturates
        if zp is not None:
            scaled = scaled + zp.astype(np.float32)
        return scaled.astype(target)
    raise ShapeError(f"{what}: cannot quantize to {target}; use an integer, float8 or float4 type")


@kernel("DequantizeLinear")
def dequantize_linear(x, x_scale, x_zero_point=None, *, axis, block_size, output_dtype):
    """ONNX DequantizeLinear: (x - zero_point) * scale, in float32, returned in the scale's dtype."""
    what = "DequantizeLinear"
    xf = x.astype(np.float32)
    # float8/float4 zero points are always zero: ignored, as the spec says
    if x_zero_point is not None and x.dtype in _INT_LIKE:
        xf -= broadcast_param(x_zero_point, x.shape, axis, block_size, what).astype(np.float32)
    y = xf * broadcast_param(x_scale, x.shape, axis, block_size, what).astype(np.float32)
    return y.astype(numpy_dtype(output_dtype) if output_dtype else x_scale.dtype)


@kernel("DynamicQuantizeLinear")
def dynamic_quantize_linear(x):
    """ONNX DynamicQuantizeLinear: uint8 with scale and zero point from x's range (including 0)."""
    f32 = np.float32
    hi = f32(max(0.0, float(np.max(x)))) if x.size else f32(0)
    lo = f32(min(0.0, float(np.min(x)))) if x.size else f32(0)
    scale = f32(1.0) if hi == lo else (hi - lo) / f32(255)
    zero_point = np.rint(np.clip(f32(0) - lo / scale, 0, 255))
    y = np.clip(np.rint(x.astype(f32) / scale) + zero_point, 0, 255)
    return y.astype(np.uint8), np.array(scale, dtype=f32), np.array(zero_point, dtype=np.uint8)
