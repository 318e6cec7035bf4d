"""CPU kernels of the optimizer's fused ops: the ONNX kernels composed, so the math is shared.

On float32/float64 data the epilogue (residual add, ReLU, Clip) runs in place on the matrix op's
fresh output, saving a pass and an allocation per step; other activations, and narrow floats, go
through the ONNX kernels exactly as the unfused layers would.
"""
from __future__ import annotations

import functools

import numpy as np

from ....errors import UnsupportedError
from ....ir.ops import attributes, spec_for
from ....ir.opdefs.fused import ACTIVATIONS, BASE, DOMAIN, attention_columns, base_attributes
from ..registry import kernel, kernel_for, tactics
from .conv import METHODS, conv_compute, conv_tactics

_IN_PLACE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@functools.lru_cache(maxsize=None)
def _onnx(op: str):
    fn = kernel_for(op)
    if fn is None:
        raise UnsupportedError(f"the fused op needs the CPU kernel of {op}, which is not registered")
    return fn


@functools.lru_cache(maxsize=None)
def _base_attrs(op: str, items: tuple) -> dict:
    """The base ONNX op's attributes of a fused layer (cached: called on every run)."""
    return base_attributes(op, dict(items))


def _base(op: str, attrs: dict) -> dict:
    names = BASE[op][1]
    return _base_attrs(op, tuple((k, _hashable(attrs[k])) for k in names))


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


@functools.lru_cache(maxsize=None)
def _activation(activation, alpha, beta):
    """(kernel, its extra inputs, its attributes) of an activation kind, resolved once per parameters."""
    act = ACTIVATIONS[activation]
    params = dict(zip(act.params, (alpha, beta)))
    if act.params_are_inputs:
        bounds = tuple(params.get(p) for p in act.params)
        return _onnx(act.op), bounds, attributes(spec_for(act.op), {}, act.op)
    given = {k: v for k, v in params.items() if v is not None}
    return _onnx(act.op), (), attributes(spec_for(act.op), {**act.fixed, **given}, act.op)


def activate(y: np.ndarray, activation, alpha, beta) -> np.ndarray:
    """Apply activation kind `activation` (None: none) with its parameters, through the ONNX kernel."""
    if activation is None:
        return y
    fn, bounds, attrs = _activation(activation, alpha, beta)
    return fn(y, *(None if v is None else np.asarray(v, y.dtype) for v in bounds), **attrs)


def _activate_in_place(y: np.ndarray, activation, alpha, beta) -> np.ndarray:
    """activate() on an array the caller owns: ReLU and Clip overwrite it (np.clip with both bounds is
    the fastest NumPy max/min; NaN stays NaN as with np.maximum)."""
    if activation == "Relu":
        return np.clip(y, 0, np.inf, out=y)
    if activation == "Clip":
        low = -np.inf if alpha is None else alpha
        high = np.inf if beta is None else beta
        return np.clip(y, np.asarray(low, y.dtype), np.asarray(high, y.dtype), out=y)
    return activate(y, activation, alpha, beta)


def _epilogue(y: np.ndarray, other, activation, alpha, beta) -> np.ndarray:
    """act(y + other) for a fresh y: in place when the dtypes allow, else through the ONNX kernels."""
    if isinstance(y, np.ndarray) and y.dtype in _IN_PLACE_DTYPES and (other is None or (
            other.dtype == y.dtype and np.broadcast_shapes(y.shape, other.shape) == y.shape)):
        if other is not None:
            y += other
        return _activate_in_place(y, activation, alpha, beta)
    if other is not None:
        y = _onnx("Add")(y, other)
    return activate(y, activation, alpha, beta)


tactics("FusedConv", METHODS, DOMAIN)(conv_tactics)


@kernel("FusedConv", domain=DOMAIN)
def fused_conv(x, w, b=None, residual=None, *, activation, activation_alpha, activation_beta, method=None,
               **attrs):
    """act(Conv(x, w, b) + residual); method picks the convolution tactic, as for Conv."""
    y = conv_compute(x, w, b, method=method, **_base("FusedConv", attrs)).astype(x.dtype, copy=False)
    return _epilogue(y, residual, activation, activation_alpha, activation_beta)


@kernel("FusedGemm", domain=DOMAIN)
def fused_gemm(a, b, c=None, *, activation, activation_alpha, activation_beta, **attrs):
    y = _onnx("Gemm")(a, b, c, **_base("FusedGemm", attrs))
    return _epilogue(y, None, activation, activation_alpha, activation_beta)


@kernel("FusedMatMul", domain=DOMAIN)
def fused_matmul(a, b, bias=None, *, activation, activation_alpha, activation_beta):
    y = _onnx("MatMul")(a, b)
    return _epilogue(y, bias, activation, activation_alpha, activation_beta)


def _heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, S, H*D) -> (B, H, S, D), a view."""
    b, s, e = x.shape
    return x.reshape(b, s, num_heads, e // num_heads).transpose(0, 2, 1, 3)


@kernel("FusedAttention", domain=DOMAIN)
def fused_attention(q, k, v, mask=None, *, num_heads, scale, scale_op, packed=None):
    (q0, wq), (k0, wk), (v0, wv) = attention_columns(packed, [q.shape[-1], k.shape[-1], v.shape[-1]])
    q, k, v = q[..., q0:q0 + wq], k[..., k0:k0 + wk], v[..., v0:v0 + wv]
    scores = _onnx("MatMul")(_heads(q, num_heads), _heads(k, num_heads).transpose(0, 1, 3, 2))
    # Scale and mask with the array operators: the same values as the ONNX Mul/Div/Add kernels (one
    # operation each, rounded once to the scores' dtype), and they also run on CuPy arrays, which the
    # GPU's generic tactic hands this kernel.
    if scale is not None:
        c = scores.dtype.type(scale)
        scores = scores * c if scale_op == "Mul" else scores / c
    if mask is not None:
        scores = scores + mask
    probs = _onnx("Softmax")(scores, **attributes(spec_for("Softmax"), {"axis": -1}, "Softmax"))
    out = _onnx("MatMul")(probs, _heads(v, num_heads))
    b, h, s, d = out.shape
    return out.transpose(0, 2, 1, 3).reshape(b, s, h * d)  # reshape copies: works on NumPy and CuPy alike


@kernel("FusedLayerNorm", domain=DOMAIN)
def fused_layer_norm(x, scale, bias=None, residual=None, *, axis, epsilon, stash_type):
    x = x if residual is None else _onnx("Add")(x, residual)
    y = _onnx("LayerNormalization")(x, scale, bias, axis=axis, epsilon=epsilon, stash_type=stash_type)
    return y[0] if isinstance(y, tuple) else y
