"""CPU kernels of the optimizer's fused ops: the ONNX kernels composed, so the math is shared.

On the CPU a fused layer saves the executor's per-layer overhead and one buffer, not arithmetic;
the GPU backend runs the same layer as one kernel with an epilogue.
"""
from __future__ import annotations

import numpy as np

from ....errors import UnsupportedError
from ....ir.ops import attributes, spec_for
from ....ir.opdefs.fused import ACTIVATIONS, DOMAIN, base_attributes
from ..registry import kernel, kernel_for


def _onnx(op: str):
    fn = kernel_for(op)
    if fn is None:
        raise UnsupportedError(f"the fused op needs the CPU kernel of {op}, which is not registered")
    return fn


def activate(y: np.ndarray, activation, alpha, beta) -> np.ndarray:
    """Apply activation kind `activation` (None: none) with its parameters, through the ONNX kernel."""
    if activation is None:
        return y
    act = ACTIVATIONS[activation]
    params = dict(zip(act.params, (alpha, beta)))
    if act.params_are_inputs:
        bounds = [None if params.get(p) is None else np.asarray(params[p], y.dtype) for p in act.params]
        return _onnx(act.op)(y, *bounds, **attributes(spec_for(act.op), {}, act.op))
    given = {k: v for k, v in params.items() if v is not None}
    return _onnx(act.op)(y, **attributes(spec_for(act.op), {**act.fixed, **given}, act.op))


def _add(y, other):
    return y if other is None else _onnx("Add")(y, other)


@kernel("FusedConv", domain=DOMAIN)
def fused_conv(x, w, b=None, residual=None, *, activation, activation_alpha, activation_beta, **attrs):
    y = _onnx("Conv")(x, w, b, **base_attributes("FusedConv", attrs))
    return activate(_add(y, residual), activation, activation_alpha, activation_beta)


@kernel("FusedGemm", domain=DOMAIN)
def fused_gemm(a, b, c=None, *, activation, activation_alpha, activation_beta, **attrs):
    y = _onnx("Gemm")(a, b, c, **base_attributes("FusedGemm", attrs))
    return activate(y, activation, activation_alpha, activation_beta)


@kernel("FusedMatMul", domain=DOMAIN)
def fused_matmul(a, b, bias=None, *, activation, activation_alpha, activation_beta):
    y = _onnx("MatMul")(a, b)
    return activate(_add(y, bias), activation, activation_alpha, activation_beta)


def _heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, S, H*D) -> (B, H, S, D), a view."""
    b, s, e = x.shape
    return x.reshape(b, s, num_heads, e // num_heads).transpose(0, 2, 1, 3)


@kernel("FusedAttention", domain=DOMAIN)
def fused_attention(q, k, v, mask=None, *, num_heads, scale, scale_op):
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
    return np.ascontiguousarray(out.transpose(0, 2, 1, 3)).reshape(b, s, h * d)


@kernel("FusedLayerNorm", domain=DOMAIN)
def fused_layer_norm(x, scale, bias=None, residual=None, *, axis, epsilon, stash_type):
    y = _onnx("LayerNormalization")(_add(x, residual), scale, bias, axis=axis, epsilon=epsilon, stash_type=stash_type)
    return y[0] if isinstance(y, tuple) else y
