"""Quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis, blocked), DynamicQuantizeLinear."""
from __future__ import annotations

from ..onnx_dtypes import dtype_name
from ..ops import Info, op
from ...errors import ShapeError

def quantized_dtype(zero_point: Info | None, output_dtype: int, what: str) -> str:
    """Output dtype of QuantizeLinear: the zero point's, else output_dtype, else uint8."""
    if zero_point is not None:
        if output_dtype and dtype_name(output_dtype, what) != zero_point.dtype:
            raise ShapeError(f"{what}: output_dtype {dtype_name(output_dtype, what)} differs from the "
                             f"zero point's dtype {zero_point.dtype}")
        return zero_point.dtype
    return dtype_name(output_dtype, what) if output_dtype else "uint8"


@op("QuantizeLinear", since=23, axis=1, block_size=0, output_dtype=0, precision=0, saturate=1)
def quantize_linear(x, y_scale, y_zero_point=None, *, axis, block_size, output_dtype, precision,
                    saturate):
    """x's shape in the quantized dtype."""
    return Info(quantized_dtype(y_zero_point, output_dtype, "QuantizeLinear"), x.shape)


@op("DequantizeLinear", since=23, axis=1, block_size=0, output_dtype=0)
def dequantize_linear(x, x_scale, x_zero_point=None, *, axis, block_size, output_dtype):
    """x's shape in the scale's dtype (or output_dtype)."""
    dtype = dtype_name(output_dtype, "DequantizeLinear") if output_dtype else x_scale.dtype
    return Info(dtype, x.shape)


@op("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(x):
    """y (uint8), y_scale (float32 scalar), y_zero_point (uint8 scalar)."""
    return Info("uint8", x.shape), Info("float32", ()), Info("uint8", ())
