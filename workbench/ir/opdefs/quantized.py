"""Quantized matrix ops (domain "workbench"), made by workbench.quant from Conv/Gemm/MatMul layers.

    QLinearConvFused(X, Wq, Bq?, residual?) = out_q(act(deq(conv(q(X), Wq) + Bq) + r(residual)))
    QGemm(X, Wq, Bq?)                        = out_q(act(deq(q(X) @ Wq^T + Bq)))

X is float32 and is quantized inside the layer: q(X) = saturate(round_half_even(X / x_scale)
+ x_zero_point) to x_dtype (int8, uint8, or float8_e4m3fn with zero point 0). X may also arrive
already quantized: when its dtype is x_dtype and x_dtype is int8 or uint8, X holds q(X) on the
layer's (x_scale, x_zero_point) and is used as is (any other integer dtype is refused).
Wq holds the quantized weights (int8 or float8_e4m3fn), per output channel along axis 0 (`w_axis`)
with `w_scale` (one value per channel, or one for the tensor) and `w_zero_point` (None: 0).
QGemm's Wq is laid out (N, K) (the TN layout int8 GEMMs run fastest in).

Integer types accumulate (q(X) - x_zero_point) * (Wq - w_zero_point) exactly in int32, add Bq
(int32, in units of x_scale * w_scale[c]) and dequantize: float32(acc) * float32(x_scale *
w_scale[c]). float8 operands accumulate in float32 and Bq is a float32 bias added after scaling.
Then the residual is added and the activation applied (kinds as in FusedConv: `activation`,
`activation_alpha`, `activation_beta`). r(residual) is the residual itself when it is float32;
an int8/uint8 residual holds grid integers and r(residual) = float32(residual - r_zero_point) *
float32(r_scale) (`r_scale` is then required). When `y_scale` is set the result is rounded to the
output's quantization grid (y_scale, y_zero_point, y_dtype), as an explicitly quantized model's
Q/DQ pair after the layer does; the output is float32 (the grid values) unless `y_quantized` is 1:
then it holds the grid integers saturate(round_half_even(v / y_scale) + y_zero_point) in y_dtype
(int8 or uint8, y_scale required), so that int8 tensors flow between quantized layers.
"""
from __future__ import annotations

import numbers

from ...errors import ShapeError, UnsupportedError
from ..ops import Info, op, spec_for
from ..rules import broadcast_of
from .fused import ACTIVATION_ATTRS, ACTIVATIONS, CONV_ATTRS, DOMAIN

QUANTIZED_OPS = ("QLinearConvFused", "QGemm")
QTYPES = ("int8", "uint8", "float8_e4m3fn")
QUANT_ATTRS = dict(x_scale=None, x_zero_point=0, x_dtype="int8", w_scale=None, w_zero_point=None, w_axis=0,
                   y_scale=None, y_zero_point=0, y_dtype="int8", y_quantized=0)
RESIDUAL_ATTRS = dict(r_scale=None, r_zero_point=0)  # QLinearConvFused's residual, when it arrives quantized
GRID_TYPES = ("int8", "uint8")  # the quantized types a tensor between layers may hold


def check_recipe(w: Info, *, x_scale, x_dtype, w_scale, w_zero_point, w_axis, y_scale, y_dtype, y_quantized,
                 activation, what: str, **_) -> None:
    """The quantization attributes must describe a runnable recipe; ShapeError says which does not."""
    if activation is not None and activation not in ACTIVATIONS:
        raise ShapeError(f"{what}: fused activation {activation!r} is unknown; known: {sorted(ACTIVATIONS)}")
    if x_dtype not in QTYPES or y_dtype not in QTYPES:
        raise ShapeError(f"{what}: x_dtype/y_dtype must be one of {QTYPES}, got {x_dtype!r}/{y_dtype!r}")
    if not _positive(x_scale):
        raise ShapeError(f"{what}: x_scale must be a positive number, got {x_scale!r}")
    if y_scale is not None and not _positive(y_scale):
        raise ShapeError(f"{what}: y_scale must be a positive number or None, got {y_scale!r}")
    scales = list(w_scale) if isinstance(w_scale, (list, tuple)) else None
    if not scales or not all(_positive(s) for s in scales):
        raise ShapeError(f"{what}: w_scale must be a non-empty list of positive numbers, got {w_scale!r}")
    channels = w.shape[w_axis] if w.shape is not None else None
    for name, values in (("w_scale", scales), ("w_zero_point", w_zero_point)):
        if values is not None and isinstance(channels, int) and len(values) not in (1, channels):
            raise ShapeError(f"{what}: {name} has {len(values)} values; W has {channels} channels on axis {w_axis}")
    if y_quantized not in (0, 1):
        raise ShapeError(f"{what}: y_quantized must be 0 or 1, got {y_quantized!r}")
    if y_quantized and (y_scale is None or y_dtype not in GRID_TYPES):
        raise ShapeError(f"{what}: y_quantized=1 writes grid integers, so it needs y_scale and a y_dtype of "
                         f"{GRID_TYPES}; got y_scale={y_scale!r}, y_dtype={y_dtype!r}")


def check_input(x: Info, x_dtype: str, what: str) -> None:
    """X is float (quantized inside the layer) or already q(X): exactly x_dtype, an integer grid type."""
    if _is_integer(x.dtype) and not (x.dtype == x_dtype and x_dtype in GRID_TYPES):
        raise ShapeError(f"{what}: X is {x.dtype}; a quantized layer takes a float X, or X already quantized "
                         f"to its x_dtype ({x_dtype}) when that is one of {GRID_TYPES}")


def check_residual(residual: Info, r_scale, what: str) -> None:
    """A residual is float, or int8/uint8 grid integers that r_scale (and r_zero_point) dequantize."""
    if not _is_integer(residual.dtype):
        return
    if residual.dtype not in GRID_TYPES:
        raise ShapeError(f"{what}: the residual is {residual.dtype}; a quantized residual must be one of {GRID_TYPES}")
    if not _positive(r_scale):
        raise ShapeError(f"{what}: the residual is {residual.dtype} (grid integers) and needs r_scale, a positive "
                         f"number, to be dequantized; got r_scale={r_scale!r}")


def output_dtype(y_quantized, y_dtype: str) -> str:
    """The dtype of a quantized layer's output: y_dtype's grid integers when y_quantized, else float32."""
    return y_dtype if y_quantized else "float32"


def _is_integer(dtype: str) -> bool:
    return dtype == "bool" or dtype.startswith(("int", "uint"))


def _positive(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0 and v < float("inf")


def _conv_rule():
    spec = spec_for("Conv")
    if spec is None:
        raise UnsupportedError("QLinearConvFused needs the Conv op, which is not registered")
    return spec.shape_rule


@op("QLinearConvFused", since=1, domain=DOMAIN, **CONV_ATTRS, **ACTIVATION_ATTRS, **QUANT_ATTRS, **RESIDUAL_ATTRS)
def qlinear_conv_fused(x, w, b=None, residual=None, **attrs):
    """Quantized convolution with fused bias, residual, activation and optional output quantization."""
    what = "QLinearConvFused"
    check_recipe(w, what=what, **attrs)
    check_input(x, attrs["x_dtype"], what)
    out = _conv_rule()(Info("float32", x.shape), w, None, **{k: attrs[k] for k in CONV_ATTRS})
    dtype = output_dtype(attrs["y_quantized"], attrs["y_dtype"])
    if residual is None:
        return Info(dtype, out.shape)
    check_residual(residual, attrs["r_scale"], what)
    return broadcast_of(out, residual, dtype=dtype)


@op("QGemm", since=1, domain=DOMAIN, **ACTIVATION_ATTRS, **QUANT_ATTRS)
def qgemm(x, w, b=None, **attrs):
    """Quantized x @ W^T (+ bias) over x's last axis; W is (N, K)."""
    check_recipe(w, what="QGemm", **attrs)
    check_input(x, attrs["x_dtype"], "QGemm")
    dtype = output_dtype(attrs["y_quantized"], attrs["y_dtype"])
    if x.shape is None or w.shape is None:
        return Info(dtype, None)
    if len(w.shape) != 2 or not x.shape:
        raise ShapeError(f"QGemm: W must be 2-D (N, K) and X at least 1-D, got X {x.shape}, W {w.shape}")
    k_x, (n, k_w) = x.shape[-1], w.shape
    if isinstance(k_x, int) and isinstance(k_w, int) and k_x != k_w:
        raise ShapeError(f"QGemm: X's last dim {k_x} does not match W's K {k_w} (W is (N, K))")
    return Info(dtype, (*x.shape[:-1], n))
