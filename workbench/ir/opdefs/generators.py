"""Tensors made from attributes or shapes: Constant, ConstantOfShape, Range, EyeLike."""
from __future__ import annotations

import math

import numpy as np

from .. import dims
from ...errors import ShapeError, UnsupportedError
from ..ops import Info, op
from ..onnx_dtypes import dtype_name
from ..rules import symbolic_value, unknown

# Generated tensors up to this many elements carry their value (they feed shape arithmetic).
_VALUE_LIMIT = 4096

_CONSTANT_FORMS = {"value_float": "float32", "value_floats": "float32", "value_int": "int64",
                   "value_ints": "int64", "value_string": "object", "value_strings": "object"}


def constant_array(value=None, sparse_value=None, **forms) -> np.ndarray:
    """The tensor a Constant node holds, from whichever of its value* attributes is set."""
    if sparse_value is not None:
        raise UnsupportedError("Constant with a sparse_value is not supported; store the tensor densely")
    if value is not None:
        return np.asarray(value)
    for name, dtype in _CONSTANT_FORMS.items():
        if forms.get(name) is not None:
            return np.array(forms[name], dtype=dtype)
    raise ShapeError("Constant has none of the attributes value, value_float(s), value_int(s), "
                     "value_string(s)")


@op("Constant", since=13, value=None, sparse_value=None, value_float=None, value_floats=None,
    value_int=None, value_ints=None, value_string=None, value_strings=None)
def constant(**attrs):
    """The attribute's tensor, value included."""
    array = constant_array(**attrs)
    return Info(array.dtype.name, tuple(array.shape), array)


@op("ConstantOfShape", since=20, value=None)
def constant_of_shape(shape, *, value):
    """A tensor of the shape tensor's value, filled with `value` (float32 0 by default)."""
    fill = np.zeros((), np.float32) if value is None else np.asarray(value)
    if fill.size != 1:
        raise ShapeError(f"ConstantOfShape value must have one element, got shape {fill.shape}")
    out = symbolic_value(shape)
    if out is None:
        rank = shape.shape[0] if shape.shape and isinstance(shape.shape[0], int) else None
        return unknown(fill.dtype.name, rank, "fill")
    if dims.is_static(out) and dims.prod(out) <= _VALUE_LIMIT:
        return Info(fill.dtype.name, out, np.full(out, fill.reshape(())))
    return Info(fill.dtype.name, tuple(out))


@op("Range", since=11, stash_type=1)
def range_(start, limit, delta, *, stash_type):
    """1-D of max(ceil((limit - start) / delta), 0) elements; symbolic when limit is (e.g. seq_len)."""
    s, l, d = (_number(x) for x in (start, limit, delta))
    if None in (s, l, d):
        return unknown(start.dtype, 1, "range")
    numeric = all(isinstance(v, (int, float)) for v in (s, l, d))
    if numeric:
        if d == 0:
            raise ShapeError("Range delta cannot be 0")
        length = max(math.ceil((l - s) / d), 0)
        if length <= _VALUE_LIMIT and start.dtype.startswith(("int", "uint")):
            return Info(start.dtype, (length,), np.arange(s, l, d, dtype=start.dtype))
        return Info(start.dtype, (length,))
    if isinstance(d, int) and d > 0 and not isinstance(s, float) and not isinstance(l, float):
        return Info(start.dtype, (dims.ceildiv(dims.sub(l, s), d),))
    return unknown(start.dtype, 1, "range")


def _number(info):
    """The one element of a scalar tensor: a Python number, a symbolic Dim, or None."""
    if isinstance(info.value, np.ndarray) and info.value.size == 1:
        return info.value.reshape(-1)[0].item()
    value = symbolic_value(info)
    return value[0] if value is not None and len(value) == 1 else None


@op("EyeLike", since=9, dtype=None, k=0)
def eye_like(x, *, dtype, k):
    """Same 2-D shape; dtype from the attribute (an ONNX type code) or the input."""
    out_dtype = x.dtype if dtype is None else dtype_name(dtype, "EyeLike dtype")
    if x.shape is not None and len(x.shape) != 2:
        raise ShapeError(f"EyeLike needs a 2-D input, got shape {x.shape}")
    return Info(out_dtype, x.shape)
