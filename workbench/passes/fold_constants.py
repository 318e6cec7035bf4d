"""Constant folding: layers whose outputs are known at build time become weights.

Two sources of known values: a layer whose inputs are all weights is run on the CPU backend, and
shape inference's known values (Shape(x) of a static x, and the Gather/Concat/... arithmetic on
it that torch exports write before every Reshape) replace the layers that computed them.
"""
from __future__ import annotations

import numpy as np

from ..backends.cpu.evaluate import evaluate_layer
from ..dtypes import np_dtype
from ..errors import WorkbenchError
from ..ir import Tensor, dims
from ..ir.ops import spec_for
from .infer import infer

# A folded output may take this many bytes, or twice its inputs' bytes (a transposed or widened
# weight): a ConstantOfShape or Expand "bomb" is never materialised.
FOLD_LIMIT_BYTES = 64 << 20
# Explicit quantization is kept: Q/DQ pairs on weights tell the int8 builder what to quantize.
NEVER_FOLDED = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


def fold_constants(net):
    """Replace every foldable layer by weights holding its outputs; returns (new net, changed).

    >>> net, changed = fold_constants(net)   # Shape->Gather->Concat->Reshape becomes Reshape(x, const)
    """
    net = net.copy()
    infos = infer(net)
    kept, changed = [], False
    for layer in net.layers:
        values = _folded(net, layer, infos) if _foldable(net, layer) else None
        if values is None:
            kept.append(layer)
            continue
        for name, value in values.items():
            net.weights[name] = value
            net.tensors[name] = Tensor(name, net.tensors[name].dtype, tuple(value.shape))
        changed = True
    net.layers = kept
    return net, changed


def _foldable(net, layer) -> bool:
    """Deterministic ops of the registry (not plugins, not Q/DQ) not writing a graph output.

    A graph output stays computed so that callers never receive (and could modify) a weight. Layers
    with subgraphs are folded only when inference knows their outputs (a Loop is never run at build
    time; an If on a constant condition is inlined by the inline_if pass).
    """
    spec = spec_for(layer.op, layer.domain)
    return (spec is not None and spec.deterministic and layer.op not in NEVER_FOLDED
            and not set(layer.outputs) & set(net.outputs))


def _folded(net, layer, infos: dict) -> dict | None:
    """{output name: value} of the layer, from inference or by running it; None when not known."""
    known = {name: static_value(infos.get(name)) for name in layer.outputs if name}
    if all(v is not None for v in known.values()):
        return known
    if not layer.subgraphs() and all(not name or name in net.weights for name in layer.inputs):
        return _evaluate(net, layer)
    return None


def static_value(info) -> np.ndarray | None:
    """An Info's value as an array of its dtype when fully known (an array, or a tuple of ints)."""
    if info is None or info.value is None:
        return None
    value = info.value
    if isinstance(value, tuple):
        if not all(isinstance(d, (int, np.integer)) for d in value):
            return None
        value = np.asarray(value, dtype=np_dtype(info.dtype)).reshape(info.shape)
    value = np.asarray(value)
    return value if value.dtype == np_dtype(info.dtype) else value.astype(np_dtype(info.dtype))


def _evaluate(net, layer) -> dict | None:
    """Run a layer on its weight inputs, unless its outputs would be too big or it fails."""
    inputs = [np.asarray(net.weights[name]) if name else None for name in layer.inputs]
    limit = max(FOLD_LIMIT_BYTES, 2 * sum(a.nbytes for a in inputs if a is not None))
    outs = [net.tensors[name] for name in layer.outputs if name]
    if any(t.shape is None or not dims.is_static(t.shape) for t in outs):
        return None  # data-dependent size: it could be anything
    if sum(int(np.prod(t.shape, dtype=np.int64)) * np_dtype(t.dtype).itemsize for t in outs) > limit:
        return None
    try:
        values = evaluate_layer(layer, inputs, [net.tensors[n].dtype if n else None for n in layer.outputs])
    except WorkbenchError:
        return None  # e.g. no CPU kernel, or invalid constants: the layer stays and fails at run time
    found = {name: v for name, v in zip(layer.outputs, values) if name}
    return found if len(found) == len(outs) and all(v is not None for v in found.values()) else None
