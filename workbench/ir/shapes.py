"""Shape inference: walk the layers in order, apply each op's shape rule, record dtypes and shapes.

Known values travel with the shapes (constants, and shape tensors such as Shape(x) = ("batch", 3))
so that the Shape -> Gather -> Concat -> Reshape chains of torch exports keep exact, symbolic shapes.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections import ChainMap
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..dtypes import np_dtype
from ..errors import ResourceLimitError, ShapeError, ValidationError, WorkbenchError
from ..limits import default_tensor_limit, format_bytes
from .ops import Info, attributes, spec_for

# Constant values up to this many elements are propagated through layers (shape arithmetic);
# larger ones are left to the constant-folding pass.
PROPAGATE_LIMIT = 4096


def rule_and_attrs(layer):
    """The layer's shape rule and full attributes, from the op registry or the plugin registry."""
    from ..plugins import lookup

    spec = spec_for(layer.op, layer.domain)
    if spec is None:
        plugin = lookup(layer.op)
        if plugin is None:
            raise ValidationError(f"layer {layer.name!r}: unknown op {layer.op!r}")
        return plugin.shape, {**plugin.defaults, **layer.attrs}
    return spec.shape_rule, attributes(spec, layer.attrs, f"layer {layer.name!r}")


def _scoped(layer) -> bool:
    spec = spec_for(layer.op, layer.domain)
    return spec is not None and spec.scoped


@dataclass(frozen=True)
class Scope:
    """What the shape rule of an op with subgraphs (If, Loop, Scan) sees of the graph around its layer.

    >>> outs = scope.infer(body, [Info("int64", ()), Info("bool", ()), *carried])
    """

    infos: Mapping                   # Info of every name visible at the layer, enclosing graphs included
    evaluate: Callable | None = None  # the evaluator of small constant layers, as for the outer graph

    def infer(self, sub, inputs: list) -> list:
        """Infos of `sub`'s outputs when its inputs are `inputs`; also records its tensors' shapes."""
        if len(inputs) != len(sub.inputs):
            raise ShapeError(f"subgraph {sub.name!r} declares {len(sub.inputs)} inputs, the op gives it "
                             f"{len(inputs)}")
        infos = infer_shapes(sub, self.evaluate, outer=self.infos, feeds=dict(zip(sub.inputs, inputs)))
        return [infos[name] for name in sub.outputs]


def initial_infos(net, feeds: dict | None = None) -> dict:
    """Infos of the graph inputs (from `feeds` when given, else declared) and of the weights."""
    infos = {}
    for name in net.inputs:
        t = net.tensors[name]
        infos[name] = feeds[name] if feeds and name in feeds else Info(t.dtype, t.shape)
    for name, w in net.weights.items():
        arr = np.asarray(w)
        infos[name] = Info(_dtype_name(arr.dtype), tuple(arr.shape), arr)
    return infos


def _dtype_name(dtype) -> str:
    return np.dtype(dtype).name


def infer_outputs(layer, infos: dict, evaluate: Callable | None = None, limit: int | None = None) -> list:
    """Output Infos of one layer given the Infos of everything before it.

    Outputs larger than `limit` bytes are refused before anything is allocated; small constant
    outputs are computed with `evaluate` so later shape rules see exact values.
    """
    rule, attrs = rule_and_attrs(layer)
    scoped = _scoped(layer)
    if scoped:
        attrs = {**attrs, "scope": Scope(infos, evaluate)}
    ins = [infos.get(name) if name else None for name in layer.inputs]
    missing = [n for n, i in zip(layer.inputs, ins) if n and i is None]
    if missing:
        raise ValidationError(f"layer {layer.name!r} ({layer.op}) reads {missing}, which nothing produces")
    omitted = [i for i in range(min(_required_inputs(rule), len(ins))) if ins[i] is None]
    if omitted:
        raise ShapeError(f"layer {layer.name!r} ({layer.op}): input {omitted[0]} is required but its name is "
                         f"empty (omitted); the model is malformed")
    try:
        outs = rule(*ins, **attrs)
    except WorkbenchError as e:
        raise type(e)(f"layer {layer.name!r} ({layer.op}): {e}") from None
    except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError, OverflowError) as e:
        raise ShapeError(f"layer {layer.name!r} ({layer.op}): cannot infer output shapes: {e}") from None
    outs = list(outs) if isinstance(outs, (list, tuple)) and not isinstance(outs, Info) else [outs]
    named = max((i + 1 for i, n in enumerate(layer.outputs) if n), default=0)
    if len(outs) < named:  # e.g. a Loop whose body returns fewer values than the node has outputs
        raise ShapeError(f"layer {layer.name!r} ({layer.op}) gives {len(outs)} outputs but the model names {named}: "
                         f"{layer.outputs}")
    _check_limit(layer, outs, limit if limit is not None else default_tensor_limit())
    # Layers with subgraphs are not evaluated here: their bodies may read more than their inputs.
    if evaluate is not None and not scoped and _all_small_constants(ins) and _all_small(outs):
        try:
            values = evaluate(layer, [i.value if i is not None else None for i in ins])
            return [Info(_dtype_name(v.dtype), tuple(v.shape), v) for v in values]
        except WorkbenchError:
            pass  # the rule's answer stands; the kernel's error will surface at run time
    return outs


@functools.lru_cache(maxsize=None)
def _required_inputs(rule) -> int:
    """How many leading inputs a shape rule requires (positional parameters without a default)."""
    try:
        params = inspect.signature(rule).parameters.values()
    except (TypeError, ValueError):
        return 0
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return sum(1 for p in positional if p.default is p.empty)


def _min_elements(info) -> int | None:
    """Elements of a tensor at its smallest non-empty size: symbolic dims count as 1.

    None for a negative dim: no such tensor can be made (the kernel says so if the layer ever runs;
    shapes inferred for an If branch that is never taken may well be impossible)."""
    if info is None or info.shape is None:
        return None
    static = [int(d) for d in info.shape if isinstance(d, (int, np.integer))]
    # empty dims count as 1 too: a (2**62, 0) tensor holds nothing, but no array can have its strides
    return None if any(d < 0 for d in static) else math.prod(max(d, 1) for d in static)


def _elements(info) -> int | None:
    if info is None or info.shape is None or not all(isinstance(d, (int, np.integer)) for d in info.shape):
        return None
    return math.prod(int(d) for d in info.shape)  # Python ints: absurd dims must not wrap around


def _all_small(outs) -> bool:
    return all((n := _elements(o)) is not None and n <= PROPAGATE_LIMIT for o in outs)


def _check_limit(layer, outs, limit: int) -> None:
    where = "graph input" if isinstance(layer, _GraphInput) else f"layer {layer.name!r} ({layer.op}): output"
    for name, info in zip(layer.outputs, outs):
        n = _min_elements(info)  # a static part already over the limit is refused, whatever the rest
        if n is not None and n * _itemsize(info.dtype) > limit:
            raise ResourceLimitError(
                f"{where} {name!r} would have shape {tuple(info.shape)} "
                f"({format_bytes(n * _itemsize(info.dtype))}), over the limit of {format_bytes(limit)}; "
                f"the model is malformed or needs smaller shapes (or raise the limit with "
                f"workbench.limits.set_tensor_limit)")


def _itemsize(dtype: str) -> int:
    try:
        return np_dtype(dtype).itemsize
    except WorkbenchError:
        return 1


def _all_small_constants(ins) -> bool:
    present = [i for i in ins if i is not None]
    return bool(present) and all(isinstance(i.value, np.ndarray) and i.value.size <= PROPAGATE_LIMIT
                                 for i in present)


def infer_shapes(net, evaluate: Callable | None = None, outer: Mapping | None = None,
                 feeds: dict | None = None) -> Mapping:
    """Infos of every tensor of `net`; also writes dtypes and shapes into `net.tensors`.

    `evaluate(layer, arrays) -> list of arrays` (the CPU backend's) lets small constant
    subgraphs be computed, so shapes derived from them are exact. For a subgraph, `outer` holds
    the Infos of the enclosing graphs (its captured names) and `feeds` the Infos of its inputs.
    """
    infos = initial_infos(net, feeds)
    limit = default_tensor_limit()
    for name in net.inputs:
        _check_limit(_GraphInput(name), [infos[name]], limit)
        if feeds and name in feeds:
            _record(net, name, infos[name])
    if outer is not None:
        infos = ChainMap(infos, outer)
    for layer in net.layers:
        outs = infer_outputs(layer, infos, evaluate)
        for name, info in zip(layer.outputs, outs):
            if name:
                infos[name] = info
                _record(net, name, info)
    return infos


def check_run_time_sizes(layer, arrays: list, limit: int | None = None) -> None:
    """Refuse, before its kernel allocates anything, a layer whose outputs would be over `limit` bytes.

    The op's own shape rule is applied to the actual inputs (small ones with their values): for the
    ops of `limits.VALUE_SHAPED_OPS`, whose output size depends on input values known only at run
    time, and for every layer of a subgraph, whose shapes may change from one iteration to the next.
    """
    infos = {}
    for name, a in zip(layer.inputs, arrays):
        if name and a is not None:
            small = isinstance(a, np.ndarray) and a.size <= PROPAGATE_LIMIT
            infos[name] = Info(_dtype_name(a.dtype), tuple(a.shape), a if small else None)
    infer_outputs(layer, infos, None, limit)


class _GraphInput:
    """Stands in for a layer in messages about a graph input."""

    op = "input"

    def __init__(self, name):
        self.name, self.outputs = name, [name]


def infer_layer(net, layer, evaluate: Callable | None = None) -> None:
    """Infer one just-appended layer (used by the Network building API)."""
    infos = {name: Info(t.dtype, t.shape, net.weights.get(name)) for name, t in net.tensors.items()}
    for name, info in zip(layer.outputs, infer_outputs(layer, infos, evaluate)):
        _record(net, name, info)


def _record(net, name: str, info: Info) -> None:
    from .network import Tensor

    shape = tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in info.shape) \
        if info.shape is not None else None
    net.tensors[name] = Tensor(name, info.dtype, shape)
