"""BatchNormalization folded into the Conv, Gemm or MatMul before it (inference statistics are constants).

BN(y) = (y - mean) * s + beta with s = gamma / sqrt(var + eps): scaling the op's output channels
by s and shifting its bias gives the same result with one layer fewer (rounding aside).
"""
from __future__ import annotations

import numpy as np

from ..ir import Layer
from .match import Graph, Rewriter

FOLDABLE = ("Conv", "Gemm", "MatMul")


def fold_batchnorm(net):
    """Fold each inference BatchNormalization into the matrix op feeding it; returns (new net, changed).

    >>> net, changed = fold_batchnorm(net)   # Conv -> BN  becomes  Conv (scaled W, shifted B)
    """
    rw = Rewriter(net)
    g = rw.graph
    for bn in g.layers_of("BatchNormalization"):
        affine = _affine(g, bn)
        producer = g.producer(bn.inputs[0], FOLDABLE)
        if affine is None or producer is None or g.only_reader(producer.output) is not bn:
            continue
        if rw.available(producer, bn):
            folded = FOLDERS[producer.op](rw, producer, *affine)
            if folded is not None:
                rw.replace([producer, bn], Layer(producer.name, folded[0], folded[1], bn.outputs[:1], folded[2]))
    return rw.finish()


def _affine(g: Graph, bn):
    """(s, t) per channel, in float64, so that BN(y) = y * s + t; None unless BN is in inference mode."""
    if bn.attrs.get("training_mode", 0) or bn.attrs.get("spatial", 1) != 1:
        return None
    if any(out and (g.readers(out) or out in g.net.outputs) for out in bn.outputs[1:]):
        return None  # running statistics are asked for
    params = [g.const(name) for name in bn.inputs[1:5]]
    if len(params) != 4 or any(p is None or p.ndim != 1 for p in params) or len({p.size for p in params}) != 1:
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    s = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    return s, beta - mean * s


def _bias(g: Graph, name: str, channels: int) -> np.ndarray:
    """An optional bias input as float64, broadcast to `channels` (zeros when omitted)."""
    value = g.const(name) if name else np.zeros(1)
    return np.broadcast_to(value.astype(np.float64).reshape(-1), (channels,))


def _fold_conv(rw: Rewriter, conv, s, t):
    """Conv(X, W, B): output channel m is W[m] -> W[m] * s[m], B[m] -> B[m] * s[m] + t[m]."""
    g = rw.graph
    w = g.const(conv.inputs[1])
    has_bias = len(conv.inputs) > 2 and conv.inputs[2]
    if w is None or w.shape[0] != s.size or (has_bias and g.const(conv.inputs[2]) is None):
        return None
    scale = s.reshape((-1,) + (1,) * (w.ndim - 1))
    bias = _bias(g, conv.inputs[2] if has_bias else "", s.size) * s + t
    w_new = rw.add_weight((w * scale).astype(w.dtype), f"{conv.name}_w_bn")
    b_new = rw.add_weight(bias.astype(w.dtype), f"{conv.name}_b_bn")
    return "Conv", [conv.inputs[0], w_new, b_new], dict(conv.attrs)


def _fold_gemm(rw: Rewriter, gemm, s, t):
    """Gemm(A, B, C) = alpha*A@B + beta*C: scale B's output columns; C -> beta*C*s + t (then beta = 1)."""
    g = rw.graph
    b = g.const(gemm.inputs[1])
    has_c = len(gemm.inputs) > 2 and gemm.inputs[2]
    trans_b = gemm.attrs.get("transB", 0)
    if b is None or b.ndim != 2 or b.shape[0 if trans_b else 1] != s.size:
        return None
    if has_c and g.const(gemm.inputs[2]) is None:
        return None
    b_new = b * (s[:, None] if trans_b else s[None, :])
    c = g.const(gemm.inputs[2]).astype(np.float64) * gemm.attrs.get("beta", 1.0) if has_c else np.zeros(1)
    if c.ndim > 2 or (c.ndim >= 1 and c.shape[-1] not in (1, s.size)):
        return None
    attrs = {**gemm.attrs, "beta": 1.0}
    inputs = [gemm.inputs[0], rw.add_weight(b_new.astype(b.dtype), f"{gemm.name}_w_bn"),
              rw.add_weight((c * s + t).astype(b.dtype), f"{gemm.name}_c_bn")]
    return "Gemm", inputs, attrs


def _fold_matmul(rw: Rewriter, matmul, s, t):
    """MatMul(A, W) with a 2-D A and constant 2-D W (BN over features): Gemm(A, W * s, t)."""
    g = rw.graph
    w, a_shape = g.const(matmul.inputs[1]), g.shape(matmul.inputs[0])
    if w is None or w.ndim != 2 or w.shape[1] != s.size or a_shape is None or len(a_shape) != 2:
        return None
    inputs = [matmul.inputs[0], rw.add_weight((w * s[None, :]).astype(w.dtype), f"{matmul.name}_w_bn"),
              rw.add_weight(t.astype(w.dtype), f"{matmul.name}_c_bn")]
    return "Gemm", inputs, {}


FOLDERS = {"Conv": _fold_conv, "Gemm": _fold_gemm, "MatMul": _fold_matmul}
