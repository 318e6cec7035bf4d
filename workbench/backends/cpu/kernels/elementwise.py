"""NumPy kernels of elementwise math: unary functions, arithmetic, variadic ops, Cast and BitCast.

16- and 8-bit floats (float16, bfloat16, float8 via ml_dtypes) are computed in float32 and
rounded back once: numpy emulates them slowly and accumulates them poorly. The helpers
`widen` and `in_wide_float` do that for every module of this family.
"""
from __future__ import annotations

import functools

import ml_dtypes
import numpy as np

from ....errors import UnsupportedError
from ....ir.onnx_dtypes import numpy_dtype
from ....ir.opdefs.elementwise import UNARY_MATH
from ..registry import kernel

NARROW_FLOATS = frozenset({
    "float16", "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
    "float8_e8m0fnu", "float4_e2m1fn",
})
SATURATING_FLOAT8 = frozenset({"float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz"})


def widen(*xs):
    """The arrays with narrow floats upcast to float32 (None passes through)."""
    return [x.astype(np.float32) if x is not None and x.dtype.name in NARROW_FLOATS else x for x in xs]


def in_wide_float(fn):
    """Wrap fn(x, *rest) to compute narrow floats in float32 and return x's dtype.

    Floating-point warnings (log(-1), 1/0) are silenced: ONNX defines those results as NaN/Inf.
    """

    @functools.wraps(fn)
    def run(x, *rest, **attrs):
        with np.errstate(all="ignore"):
            out = fn(*widen(x, *rest), **attrs)
        if out is x:  # never hand back the input itself: the executor may reuse its buffer
            return x.copy()
        return np.asarray(out).astype(x.dtype, copy=False)

    return run


# ---- unary math ------------------------------------------------------------------------------
# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969),
# coefficients as published in Netlib SPECFUN CALERF, highest power first.
_ERF_NUM = [1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02,
            3.77485237685302021e02, 3.20937758913846947e03]
_ERF_DEN = [1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
            2.84423683343917062e03]
_ERFC_MID_NUM = [2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00,
                 6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02,
                 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03]
_ERFC_MID_DEN = [1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
                 1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
                 3.43936767414372164e03, 1.23033935480374942e03]
_ERFC_TAIL_NUM = [1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
                  1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4]
_ERFC_TAIL_DEN = [1.0, 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
                  6.05183413124413191e-2, 2.33520497626869185e-3]
_ONE_OVER_SQRT_PI = 0.56418958354775628695


def _horner(coefficients, t):
    """The polynomial (highest power first) at t, computed in t's dtype.

    Not np.polyval: its float64 coefficients would promote float32 inputs (5x slower).
    """
    out = np.full_like(t, coefficients[0])
    for c in coefficients[1:]:
        out *= t
        out += c
    return out


def _rational(num, den, t):
    return _horner(num, t) / _horner(den, t)


# Eigen's single-precision rational approximation (also XLA's and TVM's): erf(x) = x P(x^2) / Q(x^2)
# on [-4, 4], within a few ulps of float32; branch-free, so 10x faster than masking regions.
_ERF32_NUM = [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
              -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02]
_ERF32_DEN = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
              -1.42647390514189e-02]


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise: to about 1e-15 for float64, a few ulps for float32.

    >>> erf(np.array([0.5]))  # array([0.52049988])
    """
    if x.dtype == np.float64:
        return _erf_double(x)
    clamped = np.clip(x, -4.0, 4.0)  # beyond, erf is +-1 in single precision; NaN stays NaN
    out = clamped * _rational(_ERF32_NUM, _ERF32_DEN, clamped * clamped)
    return np.clip(out, -1.0, 1.0)


def _erf_double(x: np.ndarray) -> np.ndarray:
    """Cody's three regions: a rational function for erf near 0, two for erfc beyond."""
    y = np.abs(x)
    out = np.empty_like(x)
    small, mid = y <= 0.46875, (y > 0.46875) & (y <= 4.0)
    tail = ~(small | mid)  # includes NaN and inf
    out[small] = x[small] * _rational(_ERF_NUM, _ERF_DEN, np.square(x[small]))
    # erfc(|x|) for the rest; erf(x) = sign(x) * (1 - erfc(|x|))
    ym, yt = y[mid], y[tail]
    erfc_mid = np.exp(-ym * ym) * _rational(_ERFC_MID_NUM, _ERFC_MID_DEN, ym)
    z = 1.0 / (yt * yt)
    erfc_tail = np.exp(-yt * yt) * (_ONE_OVER_SQRT_PI - z * _rational(_ERFC_TAIL_NUM, _ERFC_TAIL_DEN, z)) / yt
    out[mid] = np.copysign(1.0 - erfc_mid, x[mid])
    out[tail] = np.copysign(1.0 - np.nan_to_num(erfc_tail, nan=0.0), x[tail])
    out[np.isnan(x)] = np.nan
    return out


_UNARY_FUNCTIONS = {
    "Abs": np.abs, "Neg": np.negative, "Floor": np.floor, "Ceil": np.ceil,
    "Round": np.rint,  # half to even, as ONNX says
    "Sign": np.sign, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal,
    "Erf": erf, "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos,
    "Atan": np.arctan, "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh,
    "Atanh": np.arctanh,
}
assert set(_UNARY_FUNCTIONS) == set(UNARY_MATH), "every unary op spec needs a kernel"

for _name, _fn in _UNARY_FUNCTIONS.items():
    kernel(_name)(in_wide_float(_fn))


# ---- binary arithmetic -----------------------------------------------------------------------
def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b; integers truncate toward zero (C semantics), as ONNX's reference does."""
    if a.dtype.kind not in "iu":
        return np.divide(a, b)
    q = np.floor_divide(a, b)
    inexact = np.remainder(a, b) != 0
    # floor and truncation differ only for inexact quotients of opposite-signed operands
    return q + (inexact & ((a < 0) ^ (b < 0))).astype(q.dtype)


_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _divide}
for _name, _fn in _ARITHMETIC.items():
    kernel(_name)(in_wide_float(_fn))


def _integer_power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y for integers; numpy refuses negative exponents, C's pow then truncation gives these."""
    negative = y < 0
    exact = np.power(x, np.where(negative, 0, y).astype(y.dtype))
    if not negative.any():
        return exact
    fractional = np.trunc(np.power(x.astype(np.float64), y.astype(np.float64)))
    return np.where(negative, fractional, exact)


# Float powers by a scalar exponent that are products: np.power calls powf per element (100x slower).
_POWER_BY_PRODUCTS = {2: np.square, 3: lambda x: x * x * x}


@kernel("Pow")
@in_wide_float
def pow_(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y in x's dtype; y may be of another numeric dtype."""
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        return _integer_power(x, y)
    if y.size == 1 and y.ndim <= x.ndim and float(y.reshape(-1)[0]) in _POWER_BY_PRODUCTS:
        return _POWER_BY_PRODUCTS[float(y.reshape(-1)[0])](x)
    return np.power(x, y)


@kernel("Mod")
@in_wide_float
def mod(a: np.ndarray, b: np.ndarray, *, fmod=0) -> np.ndarray:
    """fmod=0: the result takes the divisor's sign (Python %); fmod=1: the dividend's (C fmod)."""
    return np.fmod(a, b) if fmod else np.mod(a, b)


# ---- variadic --------------------------------------------------------------------------------
def _fold(fn):
    """Kernel of a variadic op folding its broadcast inputs pairwise with fn."""

    def run(*xs):
        with np.errstate(all="ignore"):
            out = functools.reduce(fn, widen(*xs))
        return np.array(out, dtype=xs[0].dtype)  # a copy even for one input: never alias an input

    return run


for _name, _fn in {"Max": np.maximum, "Min": np.minimum, "Sum": np.add}.items():
    kernel(_name)(_fold(_fn))


@kernel("Mean")
def mean(*xs: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        total = functools.reduce(np.add, widen(*xs))
        return np.asarray(total / total.dtype.type(len(xs))).astype(xs[0].dtype)


# ---- Cast ------------------------------------------------------------------------------------
def cast_to(x: np.ndarray, dtype: np.dtype, saturate=1, round_mode: str = "up") -> np.ndarray:
    """x converted to `dtype` with ONNX Cast semantics (saturating float8, E8M0 rounding modes)."""
    if x.dtype.kind in "OUS":
        raise UnsupportedError("Cast: string tensors are not supported; convert them outside the network")
    if dtype.name == "float8_e8m0fnu":
        return to_e8m0(x, saturate, round_mode)
    with np.errstate(all="ignore"):
        if dtype.name in SATURATING_FLOAT8 and saturate:
            limits = ml_dtypes.finfo(dtype)
            x = np.clip(x, limits.min, limits.max)  # inf -> max, NaN stays NaN
        return x.astype(dtype)


def to_e8m0(x: np.ndarray, saturate=1, round_mode: str = "up") -> np.ndarray:
    """Power-of-two exponent format E8M0: keep float32's exponent bits, rounded by `round_mode`."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.uint16)
    mantissa = bits & 0x7FFFFF
    special = exponent == 0xFF  # inf and NaN become NaN (0xFF)
    if round_mode == "up":
        round_up = mantissa > 0
    elif round_mode == "down":
        round_up = np.zeros(bits.shape, dtype=bool)
    elif round_mode == "nearest":
        # up from the half-way point, except ties of subnormals (whose implicit bit is 0)
        half, below_half = (mantissa & 0x400000) > 0, (mantissa & 0x3FFFFF) > 0
        round_up = half & (below_half | (exponent > 0))
    else:
        raise UnsupportedError(f"Cast: round_mode must be 'up', 'down' or 'nearest', got {round_mode!r}")
    if saturate:
        round_up &= exponent != 0xFE  # stay at the largest finite value
    exponent = np.where(special, 0xFF, exponent + (round_up & ~special))
    return exponent.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)


@kernel("Cast")
def cast(x: np.ndarray, *, to, saturate=1, round_mode="up") -> np.ndarray:
    return cast_to(x, numpy_dtype(to, "Cast 'to'"), saturate, round_mode)


@kernel("CastLike")
def cast_like(x: np.ndarray, target: np.ndarray, *, saturate=1, round_mode="up") -> np.ndarray:
    return cast_to(x, target.dtype, saturate, round_mode)


@kernel("BitCast")
def bit_cast(x: np.ndarray, *, to) -> np.ndarray:
    """x's bytes reinterpreted as dtype `to` (the shape rule checks the widths match)."""
    return x.copy(order="C").view(numpy_dtype(to, "BitCast 'to'"))
