"""The three projections one attention reads become one product (TensorRT's horizontal fusion):

    Q = FusedMatMul(X, Wq, bq)   K = FusedMatMul(X, Wk, bk)   V = FusedMatMul(X, Wv, bv)
    FusedAttention(Q, K, V, mask)
        -> QKV = FusedMatMul(X, [Wq | Wk | Wv], [bq | bk | bv])
           FusedAttention(QKV, QKV, QKV, mask, packed=[wq, wk, wv])

where the weights are constants of one dtype over the same K, no projection has an activation and
the attention is the only reader of Q, K and V. Projections without a bias may be plain MatMuls
(zeros stand in for their bias where another has one). Backends read Q, K and V as column ranges of QKV
(cuDNN's SDPA takes their strides as they are: no copy). Why: one product three times as wide keeps
the GPU busy where three narrow ones leave it part idle (BERT-base b64: 192 tiles of 256 x 128 for
132 multiprocessors, each), and an int8 build quantizes X once, not three times. The packed layer
keeps Q's name (reports and `layer_precisions` use it) and lists the three projections in `fused`,
as every fusion records its sources.
"""
from __future__ import annotations

import numpy as np

from ..ir import Layer, Tensor
from ..ir.opdefs.fused import DOMAIN
from .match import Graph, Rewriter


def pack_qkv(net):
    """Pack the Q, K and V projections of each FusedAttention into one FusedMatMul; returns (net, changed).

    >>> net, changed = pack_qkv(net)
    """
    rw = Rewriter(net)
    g = rw.graph
    for attention in g.layers_of("FusedAttention", DOMAIN):
        projections = _projections(g, attention)
        if projections is None or not rw.available(attention, *projections):
            continue
        weights = [g.const(p.inputs[1]) for p in projections]
        biases = [g.const(p.inputs[2]) if len(p.inputs) > 2 and p.inputs[2] else None for p in projections]
        if any(b is not None and (b.shape != (w.shape[1],) or b.dtype != w.dtype) for w, b in zip(weights, biases)):
            continue
        q = projections[0]
        w = rw.add_weight(np.concatenate(weights, axis=1), f"{q.inputs[1]}_qkv")
        inputs = [q.inputs[0], w]
        if any(b is not None for b in biases):
            packed_bias = [np.zeros(wt.shape[1], wt.dtype) if b is None else b for wt, b in zip(weights, biases)]
            inputs.append(rw.add_weight(np.concatenate(packed_bias), f"{q.inputs[1]}_qkv_bias"))
        qkv = _packed_output(rw.net, q.output, sum(wt.shape[1] for wt in weights))
        fused = [p for p in projections if p.domain == DOMAIN]
        product = Layer(q.name, "FusedMatMul", inputs, [qkv], dict(fused[0].attrs), DOMAIN) if fused else \
            Layer(q.name, "MatMul", inputs, [qkv])
        rw.replace(projections, product)
        attrs = dict(attention.attrs, packed=[int(wt.shape[1]) for wt in weights])
        rw.replace([attention], Layer(attention.name, "FusedAttention", [qkv, qkv, qkv, *attention.inputs[3:]],
                                      list(attention.outputs), attrs, DOMAIN))
    return rw.finish()


def _projections(g: Graph, attention) -> list | None:
    """The Q, K and V FusedMatMul (or bias-free MatMul) layers when they can be packed, else None."""
    if attention.attrs.get("packed") or len(set(attention.inputs[:3])) != 3:
        return None
    found = [g.producer(name, "FusedMatMul", DOMAIN) or g.producer(name, "MatMul") for name in attention.inputs[:3]]
    if None in found or len({id(p) for p in found}) != 3:
        return None
    if any(g.only_reader(p.output) is not attention or p.inputs[0] != found[0].inputs[0] for p in found):
        return None
    if any(p.attrs.get("activation") for p in found):
        return None
    weights = [g.const(p.inputs[1]) for p in found]
    if any(w is None or w.ndim != 2 for w in weights) or len({(w.shape[0], w.dtype) for w in weights}) != 1:
        return None
    return found


def _packed_output(net, q_output: str, width: int) -> str:
    """A new tensor for QKV: Q's dtype and leading dims, `width` columns."""
    q = net.tensors.get(q_output)
    name = net._unique(f"{q_output}_qkv")
    shape = None if q is None or q.shape is None else (*q.shape[:-1], width)
    net.tensors[name] = Tensor(name, q.dtype if q is not None else "float32", shape)
    return name
