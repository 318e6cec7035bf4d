"""Shape rules of elementwise math: unary functions, arithmetic, variadic ops, Cast and BitCast.

Arithmetic on shape tensors keeps their symbolic value, so that torch's
`Shape -> Gather -> Mul -> Concat -> Reshape` chains give exact shapes:
Mul(("batch", 3), 2) has the value ("batch*2", 6).
"""
from __future__ import annotations

import numpy as np

from ...dtypes import itemsize
from ...errors import ShapeError
from .. import dims
from ..ops import Info, op
from ..onnx_dtypes import dtype_name
from ..rules import broadcast_of, same_as

# Unary ops whose output has the input's dtype and shape, with the opset each arrived in.
UNARY_MATH = {
    "Abs": 1, "Neg": 1, "Floor": 1, "Ceil": 1, "Round": 11, "Sign": 9, "Exp": 1, "Log": 1,
    "Sqrt": 1, "Reciprocal": 1, "Erf": 9, "Sin": 7, "Cos": 7, "Tan": 7, "Asin": 7, "Acos": 7,
    "Atan": 7, "Sinh": 9, "Cosh": 9, "Asinh": 9, "Acosh": 9, "Atanh": 9,
}

for _name, _since in UNARY_MATH.items():
    op(_name, since=_since)(same_as)


def check_same_dtype(op_name: str, *xs: Info) -> None:
    """Raise a ShapeError unless all present inputs share one dtype (ONNX's type constraint T)."""
    kinds = {x.dtype for x in xs if x is not None}
    if len(kinds) > 1:
        raise ShapeError(f"{op_name} needs inputs of one dtype, got {sorted(kinds)}; "
                         "insert a Cast on one input")


# ---- symbolic values of shape tensors ---------------------------------------------------------
def known_elements(x: Info | None) -> list | None:
    """The elements of a small integer tensor whose value is known (ints or symbolic dims), else None."""
    if x is None:
        return None
    if isinstance(x.value, tuple):
        return list(x.value)
    if isinstance(x.value, np.ndarray) and x.value.dtype.kind in "iu" and x.value.ndim <= 1 \
            and x.value.size <= 64:
        return [int(e) for e in x.value.ravel()]
    return None


def elementwise_value(fn, *xs: Info) -> tuple | None:
    """fn applied elementwise to 1-D known values (length-1 values broadcast), when one is symbolic.

    Only symbolic (tuple) values are handled here: all-constant inputs are folded by the evaluator.
    """
    if not any(x is not None and isinstance(x.value, tuple) for x in xs):
        return None
    values = [known_elements(x) for x in xs]
    if any(v is None for v in values) or any(x.shape is not None and len(x.shape) > 1 for x in xs):
        return None
    n = max(len(v) for v in values)
    if any(len(v) not in (1, n) for v in values):
        return None
    return tuple(fn(*(v[i] if len(v) > 1 else v[0] for v in values)) for i in range(n))


def _c_div(a, b):
    """Integer division truncating toward zero, as ONNX Div does; symbolic dims are non-negative."""
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b) if b else 0
        return q if (a < 0) == (b < 0) else -q
    return dims.floordiv(a, b)


def _plus(a, b):
    """a + b, writing "n-1" rather than "n+-1" (dims.evaluate does not parse unary minus)."""
    return dims.sub(a, -b) if isinstance(b, int) and b < 0 else dims.add(a, b)


def _minus(a, b):
    return dims.add(a, -b) if isinstance(b, int) and b < 0 else dims.sub(a, b)


_DIM_ARITHMETIC = {"Add": _plus, "Sub": _minus, "Mul": dims.mul, "Div": _c_div}


def _binary_arithmetic(name: str):
    dim_fn = _DIM_ARITHMETIC[name]

    def rule(a: Info, b: Info) -> Info:
        check_same_dtype(name, a, b)
        out = broadcast_of(a, b)
        value = elementwise_value(dim_fn, a, b) if out.dtype in ("int64", "int32") else None
        return out._replace(value=value)

    rule.__doc__ = f"{name}: numpy broadcasting; keeps symbolic values of shape tensors."
    return rule


for _name in _DIM_ARITHMETIC:
    op(_name, since=7)(_binary_arithmetic(_name))


@op("Pow", since=7)
def pow_(x: Info, y: Info) -> Info:
    """The exponent may have another dtype; the output has the base's."""
    return broadcast_of(x, y, dtype=x.dtype)


@op("Mod", since=10, fmod=0)
def mod(a: Info, b: Info, *, fmod) -> Info:
    check_same_dtype("Mod", a, b)
    return broadcast_of(a, b)


def variadic(name: str):
    """Shape rule of an op taking one or more inputs of one dtype, broadcast together."""

    def rule(*xs: Info) -> Info:
        if not xs:
            raise ShapeError(f"{name} needs at least one input")
        check_same_dtype(name, *xs)
        return broadcast_of(*xs)

    rule.__doc__ = f"{name}: one or more inputs, numpy broadcasting."
    return rule


for _name in ("Max", "Min", "Sum", "Mean"):
    op(_name, since=8)(variadic(_name))


@op("Cast", since=1, to=None, saturate=1, round_mode="up")
def cast(x: Info, *, to, saturate, round_mode) -> Info:
    """Same shape, dtype given by `to`; an integer shape tensor keeps its symbolic value."""
    dtype = dtype_name(to, "Cast 'to'")
    keeps_value = isinstance(x.value, tuple) and dtype in ("int64", "int32")
    return Info(dtype, x.shape, x.value if keeps_value else None)


@op("CastLike", since=15, saturate=1, round_mode="up")
def cast_like(x: Info, target: Info, *, saturate, round_mode) -> Info:
    return Info(target.dtype, x.shape)


@op("BitCast", since=26, to=None)
def bit_cast(x: Info, *, to) -> Info:
    """The same bits read as dtype `to`, which must be as wide as x's dtype; same shape."""
    dtype = dtype_name(to, "BitCast 'to'")
    if itemsize(dtype) != itemsize(x.dtype):
        raise ShapeError(f"BitCast: {x.dtype} ({itemsize(x.dtype) * 8} bits) and {dtype} "
                         f"({itemsize(dtype) * 8} bits) differ in width; BitCast needs equal widths")
    return Info(dtype, x.shape)
