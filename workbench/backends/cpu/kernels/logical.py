"""NumPy kernels of comparisons, boolean logic, bit operations, NaN/Inf tests and Where."""
from __future__ import annotations

import numpy as np

from ....errors import UnsupportedError
from ..registry import kernel
from .elementwise import widen


def _compare(fn):
    """Kernel of a comparison: boolean output; narrow floats compare exactly once widened."""

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.dtype.kind == "O":  # strings (Equal >= 19) arrive as object arrays
            a, b = a.astype(str), b.astype(str)
        return np.asarray(fn(*widen(a, b)))

    return run


_COMPARISONS = {"Equal": np.equal, "Less": np.less, "Greater": np.greater,
                "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal}
_SAME_DTYPE = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
               "BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or, "BitwiseXor": np.bitwise_xor}

for _name, _fn in _COMPARISONS.items():
    kernel(_name)(_compare(_fn))


def _array_of(ufunc):
    """Kernel calling `ufunc`, whose input dtype it keeps (bool for logic, the int for bit ops).

    np.asarray because ufuncs give numpy scalars for 0-d inputs.
    """
    return lambda *xs: np.asarray(ufunc(*xs))


for _name, _fn in {**_SAME_DTYPE, "Not": np.logical_not, "BitwiseNot": np.invert}.items():
    kernel(_name)(_array_of(_fn))


@kernel("IsNaN")
def is_nan(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.isnan(*widen(x)))


@kernel("IsInf")
def is_inf(x: np.ndarray, *, detect_negative=1, detect_positive=1) -> np.ndarray:
    (x,) = widen(x)
    positive = np.isposinf(x) if detect_positive else np.zeros(x.shape, dtype=bool)
    return np.asarray((positive | np.isneginf(x)) if detect_negative else positive)


@kernel("BitShift")
def bit_shift(x: np.ndarray, y: np.ndarray, *, direction=None) -> np.ndarray:
    if direction not in ("LEFT", "RIGHT"):
        raise UnsupportedError(f"BitShift: direction must be 'LEFT' or 'RIGHT', got {direction!r}")
    shift = np.left_shift if direction == "LEFT" else np.right_shift
    return np.asarray(shift(x, y)).astype(x.dtype, copy=False)


@kernel("Where")
def where(condition: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(condition, x, y)
