"""Network -> ONNX: the way back out, for networks of ONNX-domain ops (as parsed, or edited by hand).

Weights become initializers, layers nodes (their hidden `_`-attributes dropped), inputs and
outputs typed value infos with symbolic dims as dim_params. Layers of workbench's own domains
(fused and quantized ops, plugins) have no ONNX meaning and are refused by name.

    >>> model = to_onnx(net)              # onnx.ModelProto
    >>> save_onnx(net, "edited.onnx")
"""
from __future__ import annotations


import numpy as np
import onnx
from onnx import helper, numpy_helper

from .. import __version__
from ..dtypes import np_dtype
from ..errors import UnsupportedError, WorkbenchError
from ..fileio import atomic_write


def to_onnx(net, opset: int | None = None) -> onnx.ModelProto:
    """A ModelProto computing what `net` computes (its ONNX-domain layers, weights and IO)."""
    foreign = [f"{l.name} ({l.domain}::{l.op})" for l in net.layers if l.domain not in ("", "ai.onnx")]
    if foreign:
        raise UnsupportedError(f"network {net.name!r} has layers of workbench's own ops, which ONNX runtimes do "
                               f"not know: {foreign[:5]}{' ...' if len(foreign) > 5 else ''}; export the "
                               f"network as parsed (before wb.build optimizes and fuses it)")
    graph = helper.make_graph(
        [_node(layer) for layer in net.layers], net.name,
        [_value_info(net, n) for n in net.inputs], [_value_info(net, n) for n in net.outputs],
        [_initializer(n, w) for n, w in net.weights.items()])
    model = helper.make_model(graph, producer_name="workbench", producer_version=__version__,
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


def _elem_type(dtype: str) -> int:
    return helper.np_dtype_to_tensor_dtype(np_dtype(dtype))


def _value_info(net, name: str) -> onnx.ValueInfoProto:
    t = net.tensors[name]
    shape = None if t.shape is None else [d if isinstance(d, (int, str)) else None for d in t.shape]
    return helper.make_tensor_value_info(name, _elem_type(t.dtype), shape)


def _initializer(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _node(layer) -> onnx.NodeProto:
    attrs = {k: _attribute(v, k) for k, v in layer.attrs.items()
             if not k.startswith("_") and v is not None and not (isinstance(v, (list, tuple)) and not v)}
    return helper.make_node(layer.op, list(layer.inputs), list(layer.outputs), name=layer.name, **attrs)


def _attribute(value, key: str):
    """A plain attribute value as onnx.helper takes it (arrays become tensors)."""
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value, key)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value
