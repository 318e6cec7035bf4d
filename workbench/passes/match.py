"""A tiny matcher for rewrite passes: who writes a tensor, who reads it, which tensors are constants.

A fusion pass looks like this:

    rw = Rewriter(net)                              # works on a copy of net
    for bn in rw.graph.layers_of("BatchNormalization"):
        conv = rw.graph.producer(bn.inputs[0], "Conv")
        if conv is not None and rw.graph.only_reader(conv.output) is bn:
            rw.replace([conv, bn], Layer(conv.name, "Conv", ...))
    return rw.finish()                              # (new net, changed)
"""
from __future__ import annotations

import numpy as np

from ..ir import Layer


def _ops(ops) -> set:
    return {ops} if isinstance(ops, str) else set(ops)


class Graph:
    """A read-only view of a network for matching: producers, readers and constants of tensors."""

    def __init__(self, net):
        self.net = net
        self._producers = net.producers()
        self._readers = net.consumers()
        self._outputs = set(net.outputs)
        self._position = None  # layer id -> index, computed when first needed

    def in_order(self, layers) -> list:
        """`layers` sorted by their position in the network."""
        if self._position is None:
            self._position = {id(layer): i for i, layer in enumerate(self.net.layers)}
        return sorted(layers, key=lambda layer: self._position[id(layer)])

    def layers_of(self, ops, domain: str = "") -> list:
        """The layers of op `ops` (a name or a set of names) in `domain`, in network order."""
        wanted = _ops(ops)
        return [layer for layer in self.net.layers if layer.op in wanted and layer.domain == domain]

    def producer(self, name: str, ops=None, domain: str = "") -> Layer | None:
        """The layer writing `name`, when there is one and (if given) its op is one of `ops` in `domain`."""
        layer = self._producers.get(name)
        if layer is None or (ops is not None and (layer.op not in _ops(ops) or layer.domain != domain)):
            return None
        return layer

    def readers(self, name: str) -> list:
        """The distinct layers reading `name` (a layer reading it twice, like Mul(x, x), counts once)."""
        seen: dict = {}
        for layer in self._readers.get(name, []):
            seen.setdefault(id(layer), layer)
        return list(seen.values())

    def private_to(self, name: str, *layers: Layer) -> bool:
        """True when only `layers` read `name` and it is not a graph output: the value may disappear."""
        return name not in self._outputs and {id(r) for r in self.readers(name)} <= {id(layer) for layer in layers}

    def only_reader(self, name: str) -> Layer | None:
        """The single layer reading `name`, when no other does and it is not a graph output."""
        readers = self.readers(name)
        return readers[0] if len(readers) == 1 and name not in self._outputs else None

    def const(self, name: str) -> np.ndarray | None:
        """The value of `name` when it is a weight (a build-time constant)."""
        value = self.net.weights.get(name) if name else None
        return None if value is None else np.asarray(value)

    def scalar(self, name: str) -> float | None:
        """The value of a one-element float/int constant, as a Python float; None otherwise."""
        value = self.const(name)
        if value is None or value.size != 1 or value.dtype.kind not in "fiu":
            return None
        return float(value.reshape(-1)[0].astype(np.float64))

    def is_scalar(self, name: str, expected: float, rtol: float = 1e-6) -> bool:
        """True when `name` is a one-element constant equal to `expected` within `rtol`."""
        value = self.scalar(name)
        return value is not None and bool(np.isclose(value, expected, rtol=rtol, atol=0.0))

    def split_const(self, layer: Layer):
        """(the non-constant input, the constant input) of a binary layer with exactly one constant input."""
        if len(layer.inputs) != 2:
            return None
        a, b = layer.inputs
        if self.const(b) is not None and self.const(a) is None:
            return a, b
        if self.const(a) is not None and self.const(b) is None:
            return b, a
        return None

    def other_input(self, layer: Layer, name: str) -> str | None:
        """The input of a binary `layer` that is not `name` (None if `name` is not one of its two inputs)."""
        if len(layer.inputs) != 2 or name not in layer.inputs:
            return None
        a, b = layer.inputs
        return b if a == name else a

    def shape(self, name: str):
        """The recorded shape of tensor `name` (a tuple of Dims), or None when unknown."""
        t = self.net.tensors.get(name)
        return None if t is None else t.shape

    def dtype(self, name: str) -> str | None:
        t = self.net.tensors.get(name)
        return None if t is None else t.dtype


def sources(layers) -> list:
    """The names of the original layers that `layers` stand for, for a fused layer's `fused` list."""
    return [name for layer in layers for name in (layer.fused or [layer.name])]


class Rewriter:
    """Collects non-overlapping rewrites of a copy of `net`; `finish()` applies them.

    Each rewrite removes matched layers and puts one new layer where the last of them was, so the
    new layer's inputs (all read by the matched layers, or new weights) are defined before it.
    """

    def __init__(self, net):
        self.net = net.copy()
        self.graph = Graph(self.net)
        self._rewrites: list = []
        self._claimed: set = set()

    def available(self, *matched: Layer) -> bool:
        """True when none of `matched` is part of a rewrite already (check before adding weights)."""
        return not {id(m) for m in matched} & self._claimed

    def replace(self, matched: list, layer: Layer) -> bool:
        """Replace the `matched` layers by `layer`; False (nothing done) if one is already rewritten."""
        ids = {id(m) for m in matched}
        if ids & self._claimed:
            return False
        self._claimed |= ids
        layer.fused = sources(matched)
        self._rewrites.append((ids, layer))
        return True

    def add_weight(self, value, name: str) -> str:
        """A new weight tensor (a unique name derived from `name`)."""
        return self.net.add_constant(value, name)

    def finish(self):
        """(the rewritten network, whether anything changed)."""
        if not self._rewrites:
            return self.net, False
        position = {id(layer): i for i, layer in enumerate(self.net.layers)}
        anchor = {max(position[i] for i in ids): new for ids, new in self._rewrites}
        layers = []
        for i, layer in enumerate(self.net.layers):
            if i in anchor:
                layers.append(anchor[i])
            elif id(layer) not in self._claimed:
                layers.append(layer)
        self.net.layers = layers
        drop_unreferenced_tensors(self.net)
        return self.net, True


def drop_unreferenced_tensors(net) -> None:
    """Forget tensor entries that no layer, input, output or weight mentions any more."""
    used = set(net.inputs) | set(net.outputs) | set(net.weights)
    for layer in net.layers:
        used.update(layer.reads())
        used.update(layer.outputs)
    net.tensors = {k: v for k, v in net.tensors.items() if k in used}


def rename_uses(net, old: str, new: str) -> None:
    """Make every layer that reads `old` read `new` instead, inside subgraphs that capture it too."""
    rename_reads(net, {old: new})


def rename_reads(net, mapping: dict, outputs: bool = False) -> None:
    """Rename the names read by `net`'s layers (and by their subgraphs, where a subgraph does not define
    the name itself) by `mapping`; a subgraph's outputs are reads of it too (`outputs`)."""
    for layer in net.layers:
        layer.inputs = [mapping.get(n, n) for n in layer.inputs]
        for _, sub in layer.subgraphs():
            outer = {old: new for old, new in mapping.items() if old not in sub.defined()}
            if outer:
                rename_reads(sub, outer, outputs=True)
    if outputs:
        net.outputs = [mapping.get(n, n) for n in net.outputs]


def trim_inputs(names: list) -> list:
    """Drop trailing omitted ("") optional inputs."""
    names = list(names)
    while names and not names[-1]:
        names.pop()
    return names
