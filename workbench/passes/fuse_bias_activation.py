"""Matrix ops absorb what follows them, as cuDNN and cuBLASLt epilogues do:

1. a constant bias Add: per output channel into Conv's B, per column into Gemm's C,
   along the last axis into FusedMatMul's bias input;
2. a residual Add of a tensor shaped like a Conv's output: FusedConv(X, W, B, residual);
3. an activation (Relu, Clip as ReLU6, LeakyRelu, Sigmoid, Tanh, Gelu, HardSwish, Elu...):
   FusedConv / FusedGemm / FusedMatMul with attribute `activation` and its parameters.
"""
from __future__ import annotations

import numpy as np

from ..ir import Layer
from ..ir.opdefs.fused import ACTIVATIONS, DOMAIN
from ..ir.ops import attributes, spec_for
from .match import Graph, Rewriter, trim_inputs

FUSED = {"Conv": "FusedConv", "Gemm": "FusedGemm", "MatMul": "FusedMatMul"}


def fuse_bias_activation(net):
    """Fold bias Adds, residual Adds and activations into the matrix op before them; returns (net, changed).

    >>> net, changed = fuse_bias_activation(net)   # Conv -> Add(bias) -> Relu  becomes  FusedConv(Relu)
    """
    changed = False
    for step in (_fold_bias, _fuse_residual, _fuse_activation):
        net, did = step(net)
        changed |= did
    return net, changed


def _private_successor(g: Graph, layer, op: str):
    """The only reader of `layer`'s output, when it is an `op` layer (ONNX domain); else None."""
    reader = g.only_reader(layer.output)
    return reader if reader is not None and reader.op == op and reader.domain == "" else None


def _fused(layer, **changes) -> Layer:
    """`layer` as its fused op (a copy, with `changes` to its inputs/attrs)."""
    op = FUSED.get(layer.op, layer.op)
    return Layer(layer.name, op, list(changes.pop("inputs", layer.inputs)), list(layer.outputs),
                 {**layer.attrs, **changes}, DOMAIN)


# ---- 1. bias ------------------------------------------------------------------------------------

def _fold_bias(net):
    rw = Rewriter(net)
    g = rw.graph
    for layer in g.layers_of(FUSED) + g.layers_of("FusedMatMul", DOMAIN):
        add = _private_successor(g, layer, "Add")
        split = g.split_const(add) if add is not None else None
        if split is None or split[0] != layer.output or not rw.available(layer, add):
            continue
        new = _with_bias(rw, layer, g.const(split[1]))
        if new is not None:
            new.outputs = list(add.outputs)
            rw.replace([layer, add], new)
    return rw.finish()


def _with_bias(rw: Rewriter, layer, bias: np.ndarray) -> Layer | None:
    """`layer` with `bias` added to its bias input (Conv's B, Gemm's C, FusedMatMul's bias), or None
    when the bias does not vary along the output channels only."""
    g = rw.graph
    shape = g.shape(layer.output)
    vector = _channel_vector(bias, shape, 1 if layer.op == "Conv" else -1)
    if vector is None or (layer.op == "FusedMatMul" and layer.attrs.get("activation") is not None):
        return None
    inputs = (list(layer.inputs) + ["", ""])[:3]
    old = g.const(inputs[2]) if inputs[2] else np.zeros(1, bias.dtype)
    if old is None:
        return None
    attrs = dict(layer.attrs)
    if layer.op == "Gemm":  # C is scaled by beta: fold it in
        old, attrs["beta"] = old * bias.dtype.type(attrs.get("beta", 1.0)), 1.0
    total = old + vector
    if layer.op == "Conv":  # B must be 1-D of the output channels
        total = np.broadcast_to(total, (shape[1],))
    inputs[2] = rw.add_weight(total.astype(bias.dtype), f"{layer.name}_bias")
    if layer.op == "MatMul" or layer.op == "FusedMatMul":
        return _fused(layer, inputs=inputs)
    return Layer(layer.name, layer.op, inputs, list(layer.outputs), attrs)


def _channel_vector(bias: np.ndarray, shape, axis: int) -> np.ndarray | None:
    """`bias` as a 1-D vector when it only varies along `axis` (1 or -1) of an output of `shape`.

    None when the output's rank is unknown, when the bias would broadcast the output to a larger
    shape or varies along another axis, or (Conv) when the channel count is not a known int.
    """
    if shape is None or bias.ndim > len(shape) or not shape:
        return None
    padded = (1,) * (len(shape) - bias.ndim) + bias.shape
    position = axis % len(shape)
    if any(d != 1 for i, d in enumerate(padded) if i != position):
        return None
    if not isinstance(shape[position], int) or padded[position] not in (1, shape[position]):
        return None
    return bias.reshape(-1)


# ---- 2. residual --------------------------------------------------------------------------------

def _fuse_residual(net):
    rw = Rewriter(net)
    g = rw.graph
    for conv in g.layers_of("Conv"):
        add = _private_successor(g, conv, "Add")
        other = g.other_input(add, conv.output) if add is not None else None
        if other is None or other == conv.output or not _same_shape(g, conv.output, other):
            continue
        inputs = (list(conv.inputs) + ["", ""])[:3] + [other]
        if rw.available(conv, add):
            new = _fused(conv, inputs=inputs)
            new.outputs = list(add.outputs)
            rw.replace([conv, add], new)
    return rw.finish()


def _same_shape(g: Graph, a: str, b: str) -> bool:
    """True when both tensors have known, equal shapes (dim by dim, symbolic names included)."""
    sa, sb = g.shape(a), g.shape(b)
    return sa is not None and sb is not None and tuple(sa) == tuple(sb) and g.dtype(a) == g.dtype(b)


# ---- 3. activation ------------------------------------------------------------------------------

def _fuse_activation(net):
    rw = Rewriter(net)
    g = rw.graph
    fusable = g.layers_of(FUSED) + [f for f in g.layers_of(set(FUSED.values()), DOMAIN)
                                    if f.attrs.get("activation") is None]
    for layer in fusable:
        act = g.only_reader(layer.output)
        params = activation_of(g, act) if act is not None and act.inputs[0] == layer.output else None
        if params is not None and rw.available(layer, act):
            kind, alpha, beta = params
            extra = {k: v for k, v in (("activation_alpha", alpha), ("activation_beta", beta)) if v is not None}
            new = _fused(layer, activation=kind, **extra)
            new.inputs = trim_inputs(new.inputs)
            new.outputs = list(act.outputs)
            rw.replace([layer, act], new)
    return rw.finish()


def activation_of(g: Graph, layer) -> tuple | None:
    """(kind, alpha, beta) of an activation layer of ACTIVATIONS, None if it is not one we fuse."""
    spec = spec_for(layer.op, layer.domain)
    if spec is None or layer.domain != "":
        return None
    attrs = attributes(spec, layer.attrs, layer.name)
    for kind, act in ACTIVATIONS.items():
        if act.op != layer.op or any(attrs.get(k) != v for k, v in act.fixed.items()):
            continue
        values = _clip_bounds(g, layer, attrs) if act.params_are_inputs else [attrs[p] for p in act.params]
        if values is None:
            return None
        values = [None if v is None else float(v) for v in values] + [None, None]
        return kind, values[0], values[1]
    return None


def _clip_bounds(g: Graph, layer, attrs: dict) -> list | None:
    """Clip's [min, max]: constant scalar inputs (opset >= 11) or attributes (before); None if dynamic."""
    bounds = [layer.attrs.get("min"), layer.attrs.get("max")]  # as given: old defaults are +-FLT_MAX
    for i, name in enumerate(layer.inputs[1:3]):
        if name:
            bounds[i] = g.scalar(name)
            if bounds[i] is None:
                return None
    return bounds
