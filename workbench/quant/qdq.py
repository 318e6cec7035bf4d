"""Explicit quantization: fold the Q/DQ patterns of a quantized ONNX model into quantized layers.

The pattern (as onnxruntime's quantize_static writes it in QDQ format, per channel or not):

    x -> QuantizeLinear -> DequantizeLinear --\\
    W_int8 -> DequantizeLinear(axis) ----------> Conv / Gemm / MatMul (or their fused forms) -> y
    B_int32 -> DequantizeLinear (optional) ---/
    y -> QuantizeLinear -> DequantizeLinear -> ...   (optional: the output's quantization)

becomes one QLinearConvFused / QGemm with the model's own scales and zero points: the layer
reads x and quantizes it as the Q/DQ pair did, keeps the model's integer weights, and rounds
its output to the output Q's grid when every reader of y is that Q. Q/DQ layers left without
readers are removed; others (around Add, pooling...) stay and run as written.

    >>> net, folded = fold_qdq(net)
"""
from __future__ import annotations

import numpy as np

from ..ir.opdefs.quantized import QTYPES
from .numerics import is_integer, quantize, quantize_bias
from .quantize import as_matrix, drop_unused_weights, is_matrix, make_layer

Q, DQ = "QuantizeLinear", "DequantizeLinear"


def fold_qdq(net, layers=None):
    """(copy of `net` with explicitly quantized matrix layers folded, number folded).

    layers: the names that may be folded (None: all); others keep running their Q/DQ as written.
    """
    net = net.copy()
    producers, readers = net.producers(), net.consumers()
    folded = 0
    for i, layer in enumerate(net.layers):
        if is_matrix(layer) and (layers is None or layer.name in layers):
            new = _fold(net, layer, producers, readers)
            if new is not None:
                net.layers[i] = new
                folded += 1
    if folded:
        _drop_dead_qdq(net)
        drop_unused_weights(net)
    return net, folded


def _fold(net, layer, producers, readers):
    act = _activation_qdq(net, producers, layer.inputs[0])
    if act is None:
        return None
    source, x_scale, x_zp, x_dtype, pair = act
    wdq = _const_dq(net, producers, layer.inputs[1] if len(layer.inputs) > 1 else "")
    if wdq is None or wdq["dtype"] not in QTYPES or is_integer(wdq["dtype"]) != is_integer(x_dtype) \
            or not _per_output_channel(layer, wdq):
        return None
    m = as_matrix(net, layer, weight=lambda n: _dequantized(net, producers, n))
    if isinstance(m, str):
        return None
    m.x = source
    alpha = np.float32(layer.attrs.get("alpha", 1.0)) if layer.op in ("Gemm", "FusedGemm") else np.float32(1)
    w_scale = _per_channel(wdq["scale"], m.w.shape[0]) * alpha
    w_zp = _per_channel(wdq["zero_point"], m.w.shape[0]) if wdq["zero_point"] is not None else None
    shape = (-1,) + (1,) * (m.w.ndim - 1)
    wq = quantize(m.w, w_scale.reshape(shape), 0 if w_zp is None else w_zp.reshape(shape), wdq["dtype"])
    bq = None
    if m.b is not None:
        bq = quantize_bias(m.b, x_scale, w_scale) if is_integer(x_dtype) else m.b
    recipe = dict(x_scale=x_scale, x_zero_point=x_zp, x_dtype=x_dtype, w_scale=[float(s) for s in w_scale],
                  w_zero_point=None if w_zp is None or not w_zp.any() else [int(z) for z in w_zp], w_axis=0,
                  **_output_quantization(net, layer, readers))
    return make_layer(net, m, wq, bq, recipe, fused=pair)


def _activation_qdq(net, producers, name: str):
    """(source tensor, scale, zero point, dtype, [Q, DQ names]) when `name` = DQ(Q(source)) per tensor."""
    dq = producers.get(name)
    if dq is None or dq.op != DQ:
        return None
    q = producers.get(dq.inputs[0])
    if q is None or q.op != Q or net.tensors[q.inputs[0]].dtype != "float32":
        return None
    qp, dqp = _params(net, q), _params(net, dq)
    if qp is None or dqp is None or qp != dqp or len(qp[0]) != 1 or qp[2] not in QTYPES:
        return None
    if q.attrs.get("saturate", 1) != 1 or q.attrs.get("block_size", 0) or dq.attrs.get("block_size", 0):
        return None
    scale, zp, dtype = qp
    return q.inputs[0], scale[0], (int(zp[0]) if zp else 0), dtype, [q.name, dq.name]


def _params(net, layer):
    """(scales tuple, zero points tuple, quantized dtype) of a Q/DQ layer with constant parameters."""
    ins = list(layer.inputs) + ["", ""]
    scale = net.weights.get(ins[1])
    zp = net.weights.get(ins[2]) if ins[2] else None
    if scale is None or (ins[2] and zp is None):
        return None
    dtype = net.tensors[layer.outputs[0] if layer.op == Q else layer.inputs[0]].dtype
    zps = tuple(np.asarray(zp).reshape(-1).astype(np.float64)) if zp is not None else ()
    return tuple(float(s) for s in np.asarray(scale, np.float32).reshape(-1)), zps, dtype


def _const_dq(net, producers, name: str):
    """{'value', 'scale', 'zero_point', 'axis', 'dtype'} when `name` = DequantizeLinear of constants."""
    dq = producers.get(name)
    if dq is None or dq.op != DQ or dq.attrs.get("block_size", 0):
        return None
    ins = list(dq.inputs) + ["", ""]
    if not all(n in net.weights for n in ins[:2]) or (ins[2] and ins[2] not in net.weights):
        return None
    value = np.asarray(net.weights[ins[0]])
    if value.dtype.name not in QTYPES and value.dtype != np.int32:
        return None
    return {"value": value, "scale": np.asarray(net.weights[ins[1]], np.float32),
            "zero_point": np.asarray(net.weights[ins[2]]) if ins[2] else None,
            "axis": dq.attrs.get("axis", 1) % max(value.ndim, 1), "dtype": value.dtype.name}


def _per_output_channel(layer, wdq) -> bool:
    """A per-axis weight scale must run along the layer's output channels."""
    if wdq["scale"].size == 1:
        return True
    if layer.op in ("Conv", "FusedConv"):
        return wdq["axis"] == 0
    if layer.op in ("Gemm", "FusedGemm"):
        return wdq["axis"] == (0 if layer.attrs.get("transB", 0) else 1)
    return wdq["value"].ndim == 2 and wdq["axis"] == 1


def _dequantized(net, producers, name: str):
    """A constant's float32 value, reading through a DequantizeLinear of constants."""
    d = _const_dq(net, producers, name)
    if d is None:
        w = net.weights.get(name)
        return np.asarray(w, np.float32) if w is not None and np.asarray(w).dtype == np.float32 else None
    v = d["value"]
    shape = [-1 if i == d["axis"] else 1 for i in range(v.ndim)] if d["scale"].size > 1 else []
    scale = d["scale"].reshape(shape)
    zp = 0 if d["zero_point"] is None or v.dtype.name not in ("int8", "uint8", "int32") else \
        d["zero_point"].astype(np.float32).reshape(shape)
    return (v.astype(np.float32) - zp) * scale


def _per_channel(values, channels: int) -> np.ndarray:
    v = np.asarray(values).reshape(-1)
    return np.broadcast_to(v, (channels,)).astype(v.dtype).copy()


def _output_quantization(net, layer, readers) -> dict:
    """y_scale/y_zero_point/y_dtype when every reader of the layer's output is one and the same Q."""
    out = layer.outputs[0]
    users = readers.get(out, [])
    if out in net.outputs or not users or any(u.op != Q for u in users):
        return {}
    params = {_params(net, u) for u in users}
    if len(params) != 1:
        return {}
    scale, zp, dtype = params.pop()
    if len(scale) != 1 or dtype not in QTYPES or any(u.attrs.get("saturate", 1) != 1 for u in users):
        return {}
    return {"y_scale": scale[0], "y_zero_point": int(zp[0]) if zp else 0, "y_dtype": dtype}


def _drop_dead_qdq(net) -> None:
    """Remove Q/DQ layers whose outputs nothing reads (repeatedly: a DQ's removal frees its Q)."""
    while True:
        read = {n for layer in net.layers for n in layer.reads()} | set(net.outputs)
        dead = [l for l in net.layers if l.op in (Q, DQ) and not any(o in read for o in l.outputs if o)]
        if not dead:
            return
        for layer in dead:
            net.layers.remove(layer)
            for o in layer.outputs:
                net.tensors.pop(o, None)
