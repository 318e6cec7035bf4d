"""Quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis, blocked), DynamicQuantizeLinear."""
from __future__ import annotations

from ..ops import Info, op
from ...errors import ShapeError

# ONNX TensorProto data-type codes -> numpy dtype names (ml_dtypes names for the exotic ones)
ONNX_DTYPE_NAMES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
    10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
    16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz",
    21: "uint4", 22: "int4", 23: "float4_e2m1fn", 24: "float8_e8m0fnu", 25: "uint2", 26: "int2",
    27: "float6_e2m3fn", 28: "float6_e3m2fn",
}


def dtype_name(code: int, what: str) -> str:
    """The numpy dtype name of an ONNX data-type code (as in Cast's `to`)."""
    try:
        return ONNX_DTYPE_NAMES[int(code)]
    except KeyError:
        raise ShapeError(f"{what}: {code} is not an ONNX data type code workbench knows") from None


def numpy_dtype(code: int):
    """numpy dtype object of an ONNX data-type code (ml_dtypes for bfloat16, float8, int4...)."""
    import ml_dtypes
    import numpy as np

    name = dtype_name(code, "dtype")
    return np.dtype(getattr(ml_dtypes, name, name))


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
