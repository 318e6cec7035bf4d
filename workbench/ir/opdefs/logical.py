"""Shape rules of comparisons, boolean logic, bit operations, NaN/Inf tests and Where.

Equal and Where keep values of shape tensors when they are decidable, because torch exports
`expand` as Where(Equal(shape, -1), ones, shape): a symbolic dim is never negative.
"""
from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from .. import dims
from ..ops import Info, op
from ..rules import broadcast_of, same_as
from .elementwise import check_same_dtype, elementwise_value, known_elements

COMPARISONS = {"Equal": 11, "Less": 9, "Greater": 9, "LessOrEqual": 12, "GreaterOrEqual": 12}
BOOLEAN = {"And": 7, "Or": 7, "Xor": 7}
BITWISE = {"BitwiseAnd": 18, "BitwiseOr": 18, "BitwiseXor": 18}


def _binary(name: str, dtype: str | None):
    """Rule of a broadcasting binary op over one input dtype; output dtype `dtype` (None: input's)."""

    def rule(a: Info, b: Info) -> Info:
        check_same_dtype(name, a, b)
        return broadcast_of(a, b, dtype=dtype)

    rule.__doc__ = f"{name}: numpy broadcasting, output dtype {dtype or 'of the inputs'}."
    return rule


for _name, _since in COMPARISONS.items():
    if _name != "Equal":
        op(_name, since=_since)(_binary(_name, "bool"))
for _name, _since in BOOLEAN.items():
    op(_name, since=_since)(_binary(_name, "bool"))
for _name, _since in BITWISE.items():
    op(_name, since=_since)(_binary(_name, None))

op("Not", since=1)(same_as)
op("BitwiseNot", since=18)(same_as)


@op("IsNaN", since=9)
def is_nan(x: Info) -> Info:
    return same_as(x, "bool")


@op("IsInf", since=10, detect_negative=1, detect_positive=1)
def is_inf(x: Info, *, detect_negative, detect_positive) -> Info:
    return same_as(x, "bool")


@op("BitShift", since=11, direction=None)
def bit_shift(x: Info, y: Info, *, direction) -> Info:
    if direction not in ("LEFT", "RIGHT"):
        raise ShapeError(f"BitShift needs direction 'LEFT' or 'RIGHT', got {direction!r}")
    check_same_dtype("BitShift", x, y)
    return broadcast_of(x, y)


def _dims_equal(a, b):
    """a == b for dims, or None when it cannot be known before run time."""
    if isinstance(a, int) and isinstance(b, int) or a == b:
        return a == b
    # a symbolic dim is a size, never negative
    if (isinstance(a, int) and a < 0) or (isinstance(b, int) and b < 0):
        return False
    return None


@op("Equal", since=11)
def equal(a: Info, b: Info) -> Info:
    """Comparison; decidable comparisons of shape tensors give a known boolean value."""
    check_same_dtype("Equal", a, b)
    out = broadcast_of(a, b, dtype="bool")
    value = elementwise_value(_dims_equal, a, b)
    if value is None or None in value or not dims.is_static(out.shape):
        return out
    return out._replace(value=np.array(value, dtype=bool).reshape(out.shape))


@op("Where", since=9)
def where(condition: Info, x: Info, y: Info) -> Info:
    """Select between x and y; a known condition over shape tensors selects their values."""
    check_same_dtype("Where", x, y)
    out = broadcast_of(condition, x, y, dtype=x.dtype)
    cond = condition.value
    if not isinstance(cond, np.ndarray) or cond.ndim > 1 or known_elements(x) is None \
            or known_elements(y) is None:
        return out
    flags = Info("int64", cond.shape, cond.astype(np.int64).reshape(-1))
    return out._replace(value=elementwise_value(lambda c, a, b: a if c else b, flags, x, y))
