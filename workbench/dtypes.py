"""Dtype names shared by every layer: numpy names, plus ml_dtypes' bfloat16 and float8 types."""
from __future__ import annotations

import ml_dtypes
import numpy as np

from .errors import UnsupportedError

_EXTRA = {
    "bfloat16": ml_dtypes.bfloat16,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "float8_e5m2": ml_dtypes.float8_e5m2,
    "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "int4": ml_dtypes.int4,
    "uint4": ml_dtypes.uint4,
}
for _name in ("float4_e2m1fn", "float8_e8m0fnu", "int2", "uint2"):
    if hasattr(ml_dtypes, _name):
        _EXTRA[_name] = getattr(ml_dtypes, _name)

LOW_FLOATS = ("float16", "bfloat16")


def np_dtype(name) -> np.dtype:
    """The numpy dtype for a workbench dtype name.  >>> np_dtype("bfloat16")"""
    if isinstance(name, np.dtype):
        return name
    if name in _EXTRA:
        return np.dtype(_EXTRA[name])
    try:
        return np.dtype(name)
    except TypeError:
        raise UnsupportedError(f"dtype {name!r} is not supported") from None


def name_of(dtype) -> str:
    return np.dtype(dtype).name


def is_float(name: str) -> bool:
    return name.startswith("float") or name == "bfloat16"


def itemsize(name: str) -> int:
    return np_dtype(name).itemsize
