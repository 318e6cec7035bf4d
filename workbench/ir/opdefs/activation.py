"""Shape rules of activation functions: all keep the input's shape and dtype."""
from __future__ import annotations

from ...errors import ShapeError
from ..ops import Info, op
from ..rules import broadcast_of, same_as
from .elementwise import check_same_dtype

# name -> (opset it arrived in, attribute defaults)
ACTIVATIONS = {
    "Relu": (6, {}),
    "Sigmoid": (6, {}),
    "Tanh": (6, {}),
    "HardSwish": (14, {}),
    "Softplus": (1, {}),
    "Softsign": (1, {}),
    "Mish": (18, {}),
    "LeakyRelu": (6, {"alpha": 0.01}),
    "HardSigmoid": (6, {"alpha": 0.2, "beta": 0.5}),
    "Elu": (6, {"alpha": 1.0}),
    "Selu": (6, {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "Celu": (12, {"alpha": 1.0}),
    "ThresholdedRelu": (10, {"alpha": 1.0}),
    "Shrink": (9, {"bias": 0.0, "lambd": 0.5}),
    "Swish": (24, {"alpha": 1.0}),
    "Gelu": (20, {"approximate": "none"}),
}


def _unary_activation(x: Info, **attrs) -> Info:
    """Elementwise activation: output like the input."""
    return same_as(x)


for _name, (_since, _defaults) in ACTIVATIONS.items():
    op(_name, since=_since, **_defaults)(_unary_activation)


@op("PRelu", since=9)
def prelu(x: Info, slope: Info) -> Info:
    """slope broadcasts to x (unidirectionally): the output has x's shape."""
    check_same_dtype("PRelu", x, slope)
    out = broadcast_of(x, slope)
    if out.shape is not None and x.shape is not None and len(out.shape) != len(x.shape):
        raise ShapeError(f"PRelu slope of shape {slope.shape} does not broadcast to input {x.shape}")
    return same_as(x)


@op("Clip", since=6, min=None, max=None)
def clip(x: Info, low: Info | None = None, high: Info | None = None, *, min, max) -> Info:  # noqa: A002
    """Bounds come as inputs (opset >= 11) or attributes (before); the output is like x."""
    check_same_dtype("Clip", x, low, high)
    return same_as(x)


def _may_be_equal(s: tuple | None, t: tuple | None) -> bool:
    """False only when two shapes certainly differ (different ranks or different known dims)."""
    if s is None or t is None:
        return True
    return len(s) == len(t) and all(p == q for p, q in zip(s, t) if isinstance(p, int) and isinstance(q, int))


@op("SwiGLU", since=28, alpha=1.0)
def swiglu(a: Info, b: Info, *, alpha) -> Info:
    """Swish(A) * B for A and B of one shape and dtype (no broadcasting)."""
    check_same_dtype("SwiGLU", a, b)
    if not _may_be_equal(a.shape, b.shape):
        raise ShapeError(f"SwiGLU needs A and B of one shape (no broadcasting), got {a.shape} and {b.shape}")
    return same_as(a if a.shape is not None else b)
