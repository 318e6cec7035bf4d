"""Faithful emulation of reduced precisions on the CPU: values rounded as a GPU engine would store them."""
from __future__ import annotations

import numpy as np

from ...dtypes import np_dtype

STORAGE = {"fp16": "float16", "bf16": "bfloat16"}


def round_tf32(x: np.ndarray) -> np.ndarray:
    """Round float32 to TF32 (10 mantissa bits, round to nearest even), as tensor cores read operands."""
    if x.dtype != np.float32:
        return x
    bits = np.ascontiguousarray(x).view(np.uint32)
    lsb = (bits >> 13) & 1
    rounded = (bits + 0x0FFF + lsb) & np.uint32(0xFFFFE000)
    finite = np.isfinite(x)
    return np.where(finite, rounded.view(np.float32), x)


def storage_dtype(logical: str, precision: str) -> str:
    """The dtype a float32 tensor is stored in when written by a layer of `precision`."""
    if logical == "float32" and precision in STORAGE:
        return STORAGE[precision]
    return logical


def store(x: np.ndarray, dtype: str) -> np.ndarray:
    want = np_dtype(dtype)
    return x if x.dtype == want else x.astype(want)
