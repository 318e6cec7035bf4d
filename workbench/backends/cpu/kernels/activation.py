"""NumPy kernels of activation functions (narrow floats computed in float32, see elementwise)."""
from __future__ import annotations

import math

import numpy as np

from ....errors import UnsupportedError
from ..registry import kernel
from .elementwise import erf, in_wide_float


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))  # exp overflow gives the right limit, 0


def _softplus(x):
    """log(1 + exp(x)) without overflow (and 10x faster than np.logaddexp)."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _leaky(x, slope):
    """x where x >= 0, slope * x elsewhere; arithmetic rather than np.where, which is 3x slower."""
    return np.maximum(x, 0) + slope * np.minimum(x, 0)


def _exp_linear(x, alpha, x_scale=1.0):
    """x where x > 0, alpha * (exp(x / x_scale) - 1) elsewhere: Elu, Selu (scaled) and Celu."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / x_scale))


ELEMENTWISE = {
    "Relu": lambda x: np.maximum(x, 0),
    "Sigmoid": _sigmoid,
    "Tanh": np.tanh,
    "Softplus": _softplus,
    "Softsign": lambda x: x / (1 + np.abs(x)),
    "Mish": lambda x: x * np.tanh(_softplus(x)),
    "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "LeakyRelu": lambda x, *, alpha: _leaky(x, alpha),
    "HardSigmoid": lambda x, *, alpha, beta: np.clip(x * alpha + beta, 0, 1),
    "Elu": lambda x, *, alpha: _exp_linear(x, alpha),
    "Selu": lambda x, *, alpha, gamma: gamma * _exp_linear(x, alpha),
    "Celu": lambda x, *, alpha: _exp_linear(x, alpha, x_scale=alpha),
    "ThresholdedRelu": lambda x, *, alpha: np.where(x > alpha, x, 0),
    "Shrink": lambda x, *, bias, lambd: np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0)),
    "Swish": lambda x, *, alpha: x * _sigmoid(alpha * x),
}

for _name, _fn in ELEMENTWISE.items():
    kernel(_name)(in_wide_float(_fn))


@kernel("Gelu")
@in_wide_float
def gelu(x: np.ndarray, *, approximate="none") -> np.ndarray:
    """x * Phi(x) exactly (approximate='none') or with the tanh formula (approximate='tanh')."""
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x))  # not x**3: np.power is slow
        return 0.5 * x * (1 + np.tanh(inner))
    if approximate != "none":
        raise UnsupportedError(f"Gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


@kernel("PRelu")
@in_wide_float
def prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    return _leaky(x, slope)


@kernel("Clip")
@in_wide_float
def clip(x: np.ndarray, low=None, high=None, *, min=None, max=None) -> np.ndarray:  # noqa: A002
    """Bounds from the inputs (opset >= 11) or the attributes (before); min > max gives max."""
    low = min if low is None else low
    high = max if high is None else high
    out = x if low is None else np.maximum(x, np.asarray(low, dtype=x.dtype))
    return out if high is None else np.minimum(out, np.asarray(high, dtype=x.dtype))


@kernel("SwiGLU")
@in_wide_float
def swiglu(a: np.ndarray, b: np.ndarray, *, alpha=1.0) -> np.ndarray:
    """The gated linear unit with a Swish gate: A * sigmoid(alpha * A) * B."""
    return ELEMENTWISE["Swish"](a, alpha=alpha) * b
