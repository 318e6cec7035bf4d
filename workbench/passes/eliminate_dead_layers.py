"""Dead code elimination: layers no graph output needs, unused weights, and pass-through layers
(Identity, inference-mode Dropout) whose readers can read the input directly.
"""
from __future__ import annotations

import numpy as np

from .match import Graph, drop_unreferenced_tensors, rename_uses

PASS_THROUGH = ("Identity", "Dropout")


def eliminate_dead_layers(net):
    """Remove pass-through and unneeded layers and unused weights; returns (new net, changed).

    >>> net, changed = eliminate_dead_layers(net)
    """
    net = net.copy()
    before = (len(net.layers), len(net.weights))
    _bypass_pass_throughs(net)
    _drop_unneeded(net)
    return net, (len(net.layers), len(net.weights)) != before


def _bypass_pass_throughs(net) -> None:
    """Drop each Identity-like layer, making its readers read its input (edits `net` in place)."""
    for layer in [layer for layer in net.layers if layer.op in PASS_THROUGH and layer.domain == ""]:
        graph = Graph(net)  # fresh: earlier bypasses renamed edges
        if not _passes_through(graph, layer):
            continue
        source, alias = layer.inputs[0], layer.outputs[0]
        if alias not in net.outputs:
            rename_uses(net, alias, source)
        elif graph.producer(source) is not None and source not in net.outputs:
            _rename_output(net, graph.producer(source), source, alias)  # keep the graph output's name
        else:
            continue  # an output aliasing an input, weight or other output: the copy must stay
        net.layers.remove(layer)


def _passes_through(graph: Graph, layer) -> bool:
    """Identity, or Dropout at inference (training_mode absent or constant false, mask unused)."""
    if not layer.inputs or not layer.inputs[0] or not layer.outputs[0]:
        return False
    if layer.op == "Identity":
        return True
    if layer.op != "Dropout":
        return False
    mask = layer.outputs[1] if len(layer.outputs) > 1 else ""
    if mask and (graph.readers(mask) or mask in graph.net.outputs):
        return False
    training = layer.inputs[2] if len(layer.inputs) > 2 else ""
    return not training or (graph.const(training) is not None and not np.any(graph.const(training)))


def _rename_output(net, producer, old: str, new: str) -> None:
    """Make `producer` write `new` instead of `old`, and its readers read `new`."""
    producer.outputs = [new if n == old else n for n in producer.outputs]
    rename_uses(net, old, new)
    net.tensors[new].dtype, net.tensors[new].shape = net.tensors[old].dtype, net.tensors[old].shape


def _drop_unneeded(net) -> None:
    """Keep only layers some graph output depends on, and the weights they read."""
    needed = set(net.outputs)
    kept = []
    for layer in reversed(net.layers):
        if needed & set(layer.outputs):
            kept.append(layer)
            needed.update(layer.reads())  # inputs, and what its subgraphs read from this graph
    net.layers = kept[::-1]
    net.weights = {k: v for k, v in net.weights.items() if k in needed}
    drop_unreferenced_tensors(net)
