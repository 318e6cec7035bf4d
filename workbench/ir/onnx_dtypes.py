"""ONNX TensorProto data-type codes -> workbench dtype names (numpy names, ml_dtypes for the small types).

Attributes such as Cast's `to`, EyeLike's `dtype` or the window ops' `output_datatype` carry these
codes; this table is kept here, without importing onnx, so that shape rules and kernels share one copy.

    >>> dtype_name(16, "Cast")  # 'bfloat16'
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UnsupportedError

ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "str", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
    14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz",
    19: "float8_e5m2", 20: "float8_e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4_e2m1fn",
    24: "float8_e8m0fnu", 25: "uint2", 26: "int2", 27: "float6_e2m3fn", 28: "float6_e3m2fn",
}


def dtype_name(code, where: str) -> str:
    """The dtype name of ONNX data-type code `code`; `where` names the op and attribute in errors.

    >>> dtype_name(1, "EyeLike dtype")  # 'float32'
    """
    name = ONNX_DTYPES.get(code if code is None else int(code))
    if name is None:
        raise ShapeError(f"{where}: {code!r} is not an ONNX tensor data type code "
                         f"(known: {sorted(ONNX_DTYPES)})")
    if name == "str":
        raise UnsupportedError(f"{where}: string tensors are not supported; "
                               "convert strings outside the network")
    return name


def numpy_dtype(code, where: str = "dtype") -> np.dtype:
    """The numpy dtype of ONNX data-type code `code` (ml_dtypes types for bfloat16, float8, int4...).

    >>> numpy_dtype(10)  # dtype('float16')
    """
    import ml_dtypes

    name = dtype_name(code, where)
    return np.dtype(getattr(ml_dtypes, name, name))
