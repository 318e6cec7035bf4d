"""Reshape targets known symbolically become constants, so the shape arithmetic before them dies.

torch exports `x.view(x.size(0), -1)` as Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])).
With a dynamic batch the target is ("batch", -1): not a constant, but the same as [0, -1], since
Reshape's 0 copies the input's dim. Each symbolic entry equal to the input's dim at the same
position becomes 0; one other symbolic entry may become -1 when every other entry is a non-zero
int (then -1 is inferred exactly, even for empty tensors).
"""
from __future__ import annotations

import numpy as np

from .infer import infer


def static_reshape(net):
    """Give Reshapes with symbolically known targets a constant target; returns (new net, changed).

    >>> net, changed = static_reshape(net)   # Reshape(x, ("batch", -1)) becomes Reshape(x, [0, -1])
    """
    net = net.copy()
    infos = infer(net)
    changed = False
    for layer in net.layers:
        if layer.op != "Reshape" or layer.domain or len(layer.inputs) < 2 or layer.attrs.get("allowzero", 0):
            continue
        data, target = infos.get(layer.inputs[0]), infos.get(layer.inputs[1])
        if layer.inputs[1] in net.weights or target is None or not isinstance(target.value, tuple):
            continue
        constant = constant_target(tuple(target.value), None if data is None else data.shape)
        if constant is not None:
            layer.inputs = [layer.inputs[0], net.add_constant(np.array(constant, np.int64), f"{layer.name}_shape")]
            changed = True
    return net, changed


def constant_target(target: tuple, shape) -> list | None:
    """`target` (ints and symbolic dims) as Reshape entries with the same meaning, or None."""
    out, unresolved = [], []
    for i, d in enumerate(target):
        if isinstance(d, (int, np.integer)):
            out.append(int(d))
        elif shape is not None and i < len(shape) and shape[i] == d:
            out.append(0)
        else:
            out.append(-1)
            unresolved.append(i)
    if not unresolved:
        return out
    others = [d for i, d in enumerate(out) if i != unresolved[0]]
    return out if len(unresolved) == 1 and all(d > 0 for d in others) else None
