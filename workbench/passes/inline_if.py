"""If inlining: an If whose condition is a build-time constant becomes the layers of the branch it takes.

torch's legacy exporter writes such Ifs around checks of static dims (`if x.size(1) == 3:` in scripted code); once
folding has made the condition a weight, the If and its untaken branch are dead weight.
"""
from __future__ import annotations

import numpy as np

from ..ir import Layer, Tensor
from .match import drop_unreferenced_tensors, rename_reads


def inline_if(net):
    """Replace each If on a constant condition by its taken branch; returns (new net, changed).

    >>> net, changed = inline_if(net)   # If(cond=True){then: y = Relu(x)} becomes y = Relu(x)
    """
    net = net.copy()
    layers, changed = [], False
    for layer in net.layers:
        branch = taken_branch(net, layer)
        if branch is None:
            layers.append(layer)
            continue
        layers.extend(inlined(net, layer, branch))
        changed = True
    net.layers = layers
    if changed:
        drop_unreferenced_tensors(net)
    return net, changed


def taken_branch(net, layer):
    """The branch (a sub-Network) an If layer takes when its condition is a one-element weight, else None."""
    if layer.op != "If" or layer.domain or not layer.inputs or layer.inputs[0] not in net.weights:
        return None
    cond = np.asarray(net.weights[layer.inputs[0]])
    if cond.size != 1:
        return None
    return layer.attrs.get("then_branch" if bool(cond.reshape(-1)[0]) else "else_branch")


def inlined(net, layer, branch) -> list:
    """The branch's layers under fresh names of `net`, writing the If's outputs; its weights move to `net`.

    A branch output computed by a branch layer is written under the If's output name directly; one that
    is a weight, a captured value or repeated goes through an Identity (dead-layer elimination removes
    the Identities it can).
    """
    prefix = f"{layer.name}/"
    computed = dict.fromkeys(o for sub_layer in branch.layers for o in sub_layer.outputs if o)  # in order
    direct: dict = {}
    for src, dst in zip(branch.outputs, layer.outputs):
        if dst and src in computed and src not in direct:
            direct[src] = dst
    names = {name: net.add_constant(value, prefix + name) for name, value in branch.weights.items()}
    for name in computed:
        names[name] = direct.get(name) or _new_tensor(net, prefix + name, branch.tensors.get(name))
    rename_reads(branch, names)  # layer inputs, and what nested subgraphs capture of the branch
    out, taken = [], set()
    for sub_layer in branch.layers:
        sub_layer.name = _layer_name(net, prefix + sub_layer.name, taken)
        sub_layer.outputs = [names.get(o, o) for o in sub_layer.outputs]
        out.append(sub_layer)
    for src, dst in zip(branch.outputs, layer.outputs):
        if dst and direct.get(src) != dst:
            out.append(Layer(_layer_name(net, prefix + dst, taken), "Identity", [names.get(src, src)], [dst]))
    return out


def _layer_name(net, base: str, taken: set) -> str:
    """A layer name unused in `net` and among the `taken` names of layers not yet in it."""
    name, i = net._unique(base), 0
    while name in taken:
        i += 1
        name = net._unique(f"{base}_{i}")
    taken.add(name)
    return name


def _new_tensor(net, base: str, like: Tensor | None) -> str:
    name = net._unique(base)
    net.tensors[name] = Tensor(name, like.dtype if like else "float32", like.shape if like else None)
    return name
