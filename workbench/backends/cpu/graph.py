"""Run a whole Network on NumPy, in the precision of its tensors: the executor of subgraphs (If branches,
Loop and Scan bodies), which their kernels call with the values the subgraph reads from outside.

    >>> runner = GraphRunner(body)                       # compiled once per Loop call
    >>> outs = runner.run({"i": i, "cond": c, "x": x}, scope={"w": w})
"""
from __future__ import annotations

from collections import ChainMap
from typing import Mapping

import numpy as np

from ...dtypes import np_dtype
from .evaluate import call, resolve
from .registry import needs_scope


class GraphRunner:
    """A Network compiled for repeated runs: kernels resolved, dead values freed after their last reader."""

    def __init__(self, net):
        self.net = net
        keep = set(net.inputs) | set(net.weights) | set(net.outputs)
        last = {name: i for i, layer in enumerate(net.layers) for name in layer.reads()}
        self.steps = []
        for i, layer in enumerate(net.layers):
            fn, attrs = resolve(layer)
            dtypes = [np_dtype(net.tensors[o].dtype) if o in net.tensors else None for o in layer.outputs]
            outer = layer.outer_reads() if needs_scope(layer) else None
            free = [n for n in layer.reads() + layer.outputs if n and n not in keep and last.get(n, -1) <= i]
            self.steps.append((layer, fn, attrs, dtypes, outer, free))

    def run(self, feeds: dict, scope: Mapping) -> list:
        """The network's outputs, given its inputs (`feeds`) and the outer values it reads (`scope`)."""
        local = dict(feeds)
        env = ChainMap(local, self.net.weights, scope)
        for layer, fn, attrs, dtypes, outer, free in self.steps:
            kwargs = attrs if outer is None else {**attrs, "scope": {n: env[n] for n in outer}}
            outs = call(fn, kwargs, layer, [env[n] if n else None for n in layer.inputs])
            for name, value, dtype in zip(layer.outputs, outs, dtypes):
                if name:
                    local[name] = value if value is None or dtype is None or value.dtype == dtype \
                        else value.astype(dtype)
            for name in free:
                local.pop(name, None)
        return [np.asarray(env[n]) for n in self.net.outputs]


def run_graph(net, feeds: dict, scope: Mapping) -> list:
    """Outputs of `net` run once.  >>> run_graph(then_branch, {}, scope)"""
    return GraphRunner(net).run(feeds, scope)
