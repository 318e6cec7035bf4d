"""A residual Add feeding a LayerNormalization becomes one FusedLayerNorm (domain "workbench").

    y = LayerNormalization(Add(a, b), scale, bias)   ->   FusedLayerNorm(a, scale, bias, b)

The post-LN transformer block ends this way twice. a and b must have the normalized tensor's
shape (no broadcasting), the sum must have no other reader, and the norm's Mean / InvStdDev
outputs must be unused. On the GPU the sum is formed inside the row kernel: one read of each
operand and one write instead of an elementwise pass and a normalization pass.
"""
from __future__ import annotations

from ..ir import Layer
from ..ir.opdefs.fused import DOMAIN
from .match import Graph, Rewriter


def fuse_residual_layernorm(net):
    """Fold residual Adds into the LayerNormalizations they feed; returns (new net, changed).

    >>> net, changed = fuse_residual_layernorm(net)
    """
    rw = Rewriter(net)
    g = rw.graph
    for ln in g.layers_of("LayerNormalization"):
        add = _residual_add(g, ln)
        if add is not None and rw.available(add, ln):
            a, b = add.inputs
            inputs = [a, ln.inputs[1], ln.inputs[2] if len(ln.inputs) > 2 else "", b]
            rw.replace([add, ln], Layer(ln.name, "FusedLayerNorm", inputs, [ln.outputs[0]], dict(ln.attrs), DOMAIN))
    return rw.finish()


def _residual_add(g: Graph, ln):
    """The Add writing the norm's input, when it can be folded into the norm; else None."""
    if any(o and g.readers(o) for o in ln.outputs[1:]) or any(o in g.net.outputs for o in ln.outputs[1:] if o):
        return None
    add = g.producer(ln.inputs[0], "Add")
    if add is None or len(add.inputs) != 2 or g.only_reader(add.outputs[0]) is not ln:
        return None
    shape = g.shape(add.outputs[0])
    if shape is None or any(g.shape(i) != shape for i in add.inputs):
        return None
    return add
