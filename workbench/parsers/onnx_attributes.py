"""ONNX AttributeProto -> plain Python values (ints, floats, str, lists, numpy arrays)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ParseError

A = onnx.AttributeProto


def attribute_value(attr: onnx.AttributeProto, where: str = "", subgraph=None):
    """The value of one attribute; strings decoded as UTF-8, tensors as numpy arrays, and graphs
    (If branches, Loop and Scan bodies) as whatever `subgraph(GraphProto, attribute name)` makes of them
    (the parser makes sub-Networks)."""
    kind = attr.type
    if kind == A.GRAPH and subgraph is not None:
        return subgraph(attr.g, attr.name)
    if kind == A.INT:
        return int(attr.i)
    if kind == A.FLOAT:
        return float(attr.f)
    if kind == A.STRING:
        return attr.s.decode("utf-8", errors="replace")
    if kind == A.INTS:
        return [int(i) for i in attr.ints]
    if kind == A.FLOATS:
        return [float(f) for f in attr.floats]
    if kind == A.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in attr.strings]
    if kind == A.TENSOR:
        return tensor_to_array(attr.t, where)
    raise ParseError(f"{where}: attribute {attr.name!r} has a type workbench does not support "
                     f"({A.AttributeType.Name(kind)}; graph lists, sparse tensors and type protos are not supported)")


def tensor_to_array(t: onnx.TensorProto, where: str = "") -> np.ndarray:
    """The tensor's data; its external data must have been read already (only a file has a folder)."""
    if t.data_location == onnx.TensorProto.EXTERNAL:
        # onnx would read it relative to the process's working directory: never for untrusted input
        raise ParseError(f"{where}: tensor {t.name!r} keeps its data in an external file; load the model "
                         f"from its file path so workbench reads the data from the model's folder")
    try:
        return np.array(numpy_helper.to_array(t))
    except Exception as e:  # noqa: BLE001 - protobuf/numpy raise many kinds on malformed data
        raise ParseError(f"{where}: tensor {t.name!r} cannot be read: {e}") from None


def node_attributes(node: onnx.NodeProto, where: str = "", subgraph=None) -> dict:
    """{attribute name: value} of a node; graph attributes need `subgraph` (see attribute_value)."""
    where = where or f"node {node.name!r} ({node.op_type})"
    return {a.name: attribute_value(a, where, subgraph) for a in node.attribute}
