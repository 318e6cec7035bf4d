"""The arithmetic of quantization, shared by the quantizer (weights) and the kernels (activations).

Every step is written the way a GPU kernel does it, so the CPU emulation is bit-faithful:
x / scale in float32, round half to even, saturate to the type's range; products of the
integer operands are summed exactly (int32 on the GPU, float64 here, exact below 2**53);
dequantization is float32(acc) * float32(x_scale * w_scale).

    >>> q = quantize(np.float32([0.5, -3.0]), 0.1, 0, "int8")   # array([ 5, -30], dtype=int8)
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

FP8 = "float8_e4m3fn"
FP8_MAX = 448.0          # largest finite float8_e4m3fn
INT8_MAX = 127           # symmetric int8: amax maps to 127
# The largest quantized magnitude of each precision: scale = amax / QMAX[precision].
QMAX = {"int8": float(INT8_MAX), "fp8": FP8_MAX}
STORAGE = {"int8": "int8", "fp8": FP8}
INTEGER_TYPES = ("int8", "uint8")


def qtype(name: str) -> np.dtype:
    """numpy dtype of a quantized type name: int8, uint8 or float8_e4m3fn."""
    return np.dtype(getattr(ml_dtypes, name)) if name == FP8 else np.dtype(name)


def is_integer(name: str) -> bool:
    return name in INTEGER_TYPES


def quantize(x: np.ndarray, scale, zero_point, dtype: str) -> np.ndarray:
    """x quantized to `dtype` with a scale (scalar, or an array broadcastable to x) and zero point.

    Integers: saturate(round_half_even(x / scale) + zero_point), as ONNX QuantizeLinear.
    float8_e4m3fn: x / scale saturated to +-448, then rounded to nearest even by the cast.
    """
    scaled = np.asarray(np.asarray(x, np.float32) / np.asarray(scale, np.float32))
    if dtype == FP8:
        return np.clip(scaled, -FP8_MAX, FP8_MAX).astype(qtype(FP8))
    info = np.iinfo(dtype)
    # float32 throughout, in place (a chained layer quantizes every output): rint is exact, and so is
    # adding an int8/uint8 zero point wherever the sum is not saturated anyway (|value| < 2**24)
    q = np.rint(scaled, out=scaled)
    zero_point = np.asarray(zero_point, np.float32)
    if np.any(zero_point):
        q = q + zero_point
    return np.clip(q, info.min, info.max, out=q).astype(dtype)


def quantize_centred(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """quantize(x) - zero_point as float32 integers, computed in one float32 pass (the same values:
    x / scale is rounded in float32 either way, and every integer of int8/uint8 range is exact)."""
    info = np.iinfo(dtype)
    q = np.rint(np.asarray(x, np.float32) / np.float32(scale))
    return np.clip(q, info.min - zero_point, info.max - zero_point, out=q)


def dequantize(q: np.ndarray, scale, zero_point=0) -> np.ndarray:
    """(q - zero_point) * scale in float32, as ONNX DequantizeLinear."""
    centred = np.asarray(q, np.float32) - np.asarray(zero_point, np.float32)
    return centred * np.asarray(scale, np.float32)


def fake_quantize(x: np.ndarray, scale, zero_point, dtype: str) -> np.ndarray:
    """x rounded to the quantization grid and back: DequantizeLinear(QuantizeLinear(x))."""
    return dequantize(quantize(x, scale, zero_point, dtype), scale, zero_point if is_integer(dtype) else 0)


def symmetric_scale(amax, precision: str) -> np.ndarray:
    """float32 scale mapping amax to the largest quantized value; an all-zero range gets scale 1."""
    amax = np.asarray(amax, np.float64)
    scale = np.where(amax > 0, amax / QMAX[precision], 1.0)
    return scale.astype(np.float32)


def per_channel_amax(w: np.ndarray, axis: int) -> np.ndarray:
    """max |w| over every axis but `axis`: one value per output channel."""
    other = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    return np.max(np.abs(w), axis=other) if other else np.abs(w)


def quantize_weights(w: np.ndarray, axis: int | None, precision: str):
    """(quantized weights, float32 scales): symmetric, per channel along `axis` (None: per tensor).

    int8 weights use [-127, 127] so that -w is representable, as TensorRT does.
    """
    w = np.asarray(w, np.float32)
    amax = np.max(np.abs(w)) if axis is None else per_channel_amax(w, axis)
    scale = symmetric_scale(np.atleast_1d(amax), precision)
    shaped = scale if axis is None else scale.reshape([-1 if i == axis % w.ndim else 1 for i in range(w.ndim)])
    shaped = shaped.reshape(()) if axis is None else shaped
    q = quantize(w, shaped, 0, STORAGE[precision])
    if precision == "int8":
        q = np.maximum(q, np.int8(-INT8_MAX))
    return q, scale


def quantize_bias(b: np.ndarray, x_scale: float, w_scale: np.ndarray) -> np.ndarray:
    """int32 bias in units of x_scale * w_scale (per output channel), as the accumulator holds it."""
    unit = np.float32(x_scale) * np.asarray(w_scale, np.float32)
    q = np.rint(np.asarray(b, np.float32).astype(np.float64) / unit.astype(np.float64))
    info = np.iinfo(np.int32)
    return np.clip(q, info.min, info.max).astype(np.int32)
