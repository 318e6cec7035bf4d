"""Generator kernels: Constant, ConstantOfShape, Range, EyeLike."""
from __future__ import annotations

import ml_dtypes  # noqa: F401 - registers bfloat16 & co. as numpy dtype names
import numpy as np

from ....ir.opdefs.generators import constant_array
from ....ir.onnx_dtypes import numpy_dtype
from ..registry import kernel


@kernel("Constant")
def constant(**attrs):
    return constant_array(**attrs)


@kernel("ConstantOfShape")
def constant_of_shape(shape, *, value=None):
    fill = np.zeros((), np.float32) if value is None else np.asarray(value).reshape(())
    return np.full(tuple(int(d) for d in shape), fill, dtype=fill.dtype)


# float16/bfloat16 ranges are computed in the stash type and rounded once, as onnx.reference does
_STASH = {1: np.float32, 11: np.float64}


@kernel("Range")
def range_(start, limit, delta, *, stash_type=1):
    dtype = start.dtype
    if dtype in (np.float16, ml_dtypes.bfloat16):
        compute = _STASH[int(stash_type)]
        return np.arange(start.astype(compute).item(), float(limit), float(delta), dtype=compute).astype(dtype)
    return np.arange(start.item(), limit.item(), delta.item()).astype(dtype)


@kernel("EyeLike")
def eye_like(x, *, dtype=None, k=0):
    out_dtype = x.dtype if dtype is None else numpy_dtype(dtype, "EyeLike dtype")
    return np.eye(x.shape[0], x.shape[1], k=k, dtype=out_dtype)
