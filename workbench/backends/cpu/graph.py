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
from ...ir.shapes import PROPAGATE_LIMIT, check_run_time_sizes
from ...limits import VALUE_SHAPED_OPS
from .evaluate import call, resolve
from .registry import needs_scope


class GraphRunner:
    """A Network compiled for repeated runs: kernels resolved, dead values freed after their last reader.

    A body's shapes may change from one iteration to the next (a state that doubles each time), so each
    layer's outputs are sized by its shape rule before it runs, whenever its input shapes are new.
    """

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
        self.checked: dict = {}  # layer name -> the input signature last found within the size limit

    def run(self, feeds: dict, scope: Mapping) -> list:
        """The network's outputs, given its inputs (`feeds`) and the outer values it reads (`scope`)."""
        local = dict(feeds)
        env = ChainMap(local, self.net.weights, scope)
        for layer, fn, attrs, dtypes, outer, free in self.steps:
            kwargs = attrs if outer is None else {**attrs, "scope": {n: env[n] for n in outer}}
            args = [env[n] if n else None for n in layer.inputs]
            if outer is None:  # a nested If/Loop/Scan checks the layers of its own subgraphs
                self._check_sizes(layer, args)
            outs = call(fn, kwargs, layer, args)
            for name, value, dtype in zip(layer.outputs, outs, dtypes):
                if name:
                    local[name] = value if value is None or dtype is None or value.dtype == dtype \
                        else value.astype(dtype)
            for name in free:
                local.pop(name, None)
        return [np.asarray(env[n]) for n in self.net.outputs]

    def _check_sizes(self, layer, args: list) -> None:
        """Refuse a layer whose outputs would be over the size limit, checking each new input signature once."""
        value_shaped = layer.op in VALUE_SHAPED_OPS
        signature = tuple(None if a is None else (np.shape(a), np.asarray(a).tobytes() if value_shaped and
                                                  np.size(a) <= PROPAGATE_LIMIT else None) for a in args)
        if self.checked.get(layer.name) != signature:
            check_run_time_sizes(layer, [None if a is None else np.asarray(a) for a in args])
            self.checked[layer.name] = signature


def run_graph(net, feeds: dict, scope: Mapping) -> list:
    """Outputs of `net` run once.  >>> run_graph(then_branch, {}, scope)"""
    return GraphRunner(net).run(feeds, scope)
