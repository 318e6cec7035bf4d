"""Network -> ONNX: the way back out, for networks of ONNX-domain ops (as parsed, or edited by hand).

Weights become initializers, layers nodes (their hidden `_`-attributes dropped), inputs and
outputs typed value infos with symbolic dims as dim_params. Layers of workbench's own domains
(fused and quantized ops, plugins) have no ONNX meaning and are refused by name.

    >>> model = to_onnx(net)              # onnx.ModelProto
    >>> save_onnx(net, "edited.onnx")
"""
from __future__ import annotations

from collections import ChainMap

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .. import __version__
from ..dtypes import np_dtype
from ..errors import UnsupportedError, WorkbenchError
from ..fileio import atomic_write


def to_onnx(net, opset: int | None = None) -> onnx.ModelProto:
    """A ModelProto computing what `net` computes (its ONNX-domain layers, weights and IO)."""
    foreign = [f"{l.name} ({l.domain}::{l.op})" for l in _all_layers(net) if l.domain not in ("", "ai.onnx")]
    if foreign:
        raise UnsupportedError(f"network {net.name!r} has layers of workbench's own ops, which ONNX runtimes do "
                               f"not know: {foreign[:5]}{' ...' if len(foreign) > 5 else ''}; export the "
                               f"network as parsed (before wb.build optimizes and fuses it)")
    model = helper.make_model(_graph(net), producer_name="workbench", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", int(opset or net.opset))])
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise WorkbenchError(f"the exported ONNX model of {net.name!r} does not pass onnx.checker: {e}") from None
    return model


def save_onnx(net, path, opset: int | None = None) -> onnx.ModelProto:
    """Write `net` as an ONNX file (atomically) and return the ModelProto."""
    model = to_onnx(net, opset)
    atomic_write(path, model.SerializeToString(), "ONNX model")
    return model


def _graph(net, outer=None) -> onnx.GraphProto:
    """The network (or a subgraph: an If branch, a Loop or Scan body, seeing the `outer` tensors) as a
    GraphProto."""
    tensors = ChainMap(net.tensors, outer or {})
    nodes = [_node(layer, tensors) for layer in net.layers]
    outputs = []
    captured = set(net.captured()) if outer is not None else set()
    for i, name in enumerate(net.outputs):
        if name in captured:  # ONNX wants a subgraph to copy a value of an enclosing graph it returns
            nodes.append(helper.make_node("Identity", [name], [f"{name}__{net.name}_out{i}"]))
        outputs.append(_value_info(tensors, name, nodes[-1].output[0] if name in captured else name))
    return helper.make_graph(nodes, net.name, [_value_info(tensors, n) for n in net.inputs], outputs,
                             [_initializer(n, w) for n, w in net.weights.items()])


def _all_layers(net) -> list:
    return [x for layer in net.layers for x in [layer, *(y for _, sub in layer.subgraphs()
                                                          for y in _all_layers(sub))]]


def _elem_type(dtype: str) -> int:
    return helper.np_dtype_to_tensor_dtype(np_dtype(dtype))


def _value_info(tensors, name: str, as_name: str | None = None) -> onnx.ValueInfoProto:
    """The typed value info of tensor `name` (under the name `as_name` when given)."""
    t = tensors[name]
    shape = None if t.shape is None else [d if isinstance(d, (int, str)) else None for d in t.shape]
    return helper.make_tensor_value_info(as_name or name, _elem_type(t.dtype), shape)


def _initializer(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _node(layer, tensors) -> onnx.NodeProto:
    attrs = {k: _attribute(v, k, tensors) for k, v in layer.attrs.items()
             if not k.startswith("_") and v is not None and not (isinstance(v, (list, tuple)) and not v)}
    return helper.make_node(layer.op, list(layer.inputs), list(layer.outputs), name=layer.name, **attrs)


def _attribute(value, key: str, tensors):
    """A plain attribute value as onnx.helper takes it (arrays become tensors, sub-Networks graphs)."""
    from ..ir import Network

    if isinstance(value, Network):
        return _graph(value, tensors)
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value, key)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value
