"""ONNX -> Network. The only module (with onnx_attributes) that reads ONNX protobufs.

    >>> net = workbench.load_onnx("model.onnx")
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from ..errors import ParseError, ResourceLimitError, WorkbenchError
from ..ir import Layer, Network, Tensor
from ..ir.dims import fresh
from ..ir.network import MAX_SUBGRAPH_DEPTH
from ..ir.ops import spec_for
from ..plugins import PLUGIN_DOMAIN, lookup
from .onnx_attributes import node_attributes, tensor_to_array

# Ops whose semantics changed across opsets in a way a kernel cannot see from its attributes.
OPSET_SENSITIVE = {"Softmax", "LogSoftmax", "Hardmax", "GroupNormalization", "DFT", "Scan"}
MIN_OPSET = 7


def load_onnx(model, name: str | None = None) -> Network:
    """Parse an ONNX model (path, bytes or ModelProto) into a Network with inferred shapes.

    >>> net = load_onnx("resnet50.onnx")
    """
    proto, where, base_dir = _read(model)
    try:
        from onnx import inliner

        if proto.functions:
            proto = inliner.inline_local_functions(proto)
    except Exception as e:  # noqa: BLE001 - the inliner raises plain exceptions on bad functions
        raise ParseError(f"{where}: its model-local functions cannot be inlined: {e}") from None
    return convert(proto, where, name)


def _read(model):
    if isinstance(model, onnx.ModelProto):
        return model, "model", None
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _parse_bytes(bytes(model), "model bytes"), "model bytes", None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ParseError(f"{path}: no such file; give the path of an .onnx model")
        proto = _parse_bytes(path.read_bytes(), str(path))
        _load_external_data(proto, path)
        return proto, str(path), path.parent
    raise ParseError(f"load_onnx takes a path, bytes or onnx.ModelProto, not {type(model).__name__}")


def _parse_bytes(data: bytes, where: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ParseError(f"{where}: not a valid ONNX protobuf ({e}); is this an .onnx file?") from None
    if not proto.HasField("graph"):
        raise ParseError(f"{where}: the model has no graph; is this an .onnx file?")
    return proto


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """Load external initializers, refusing locations that leave the model's folder."""
    from onnx import external_data_helper as ext

    folder = path.parent.resolve()
    tensors = [t for t in ext._get_all_tensors(proto) if ext.uses_external_data(t)]
    for t in tensors:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        target = (folder / loc).resolve()
        if not loc or os.path.isabs(loc) or folder not in target.parents:
            raise ParseError(f"{path}: initializer {t.name!r} points at external data {loc!r} outside the "
                             f"model's folder; move the data next to the model")
        if not target.is_file():
            raise ParseError(f"{path}: initializer {t.name!r} needs external data file {loc!r}, which is missing")
    if tensors:
        try:
            ext.load_external_data_for_model(proto, str(folder))
        except Exception as e:  # noqa: BLE001
            raise ParseError(f"{path}: external data cannot be read: {e}") from None


def convert(proto: onnx.ModelProto, where: str = "model", name: str | None = None) -> Network:
    """Turn a ModelProto into a validated Network with shapes inferred."""
    opsets = {o.domain or "": int(o.version) for o in proto.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx", 0))
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ParseError(f"{where}: uses ONNX opset {opset}, newer than this onnx ({newest}); upgrade onnx")
    if opset == 0:
        raise ParseError(f"{where}: imports no ai.onnx opset (only {sorted(opsets)}); workbench reads models of "
                         f"the default ONNX domain, with plugins for custom ops")
    if opset < MIN_OPSET:
        raise ParseError(f"{where}: uses ONNX opset {opset}; workbench reads opset {MIN_OPSET} and newer — "
                         f"convert it with onnx.version_converter")
    g = proto.graph
    net = _graph(g, Network(name or g.name or "network", opset=opset), opsets, where, 0)
    net.metadata = {"producer": proto.producer_name, "producer_version": proto.producer_version,
                    "source": where, "opsets": opsets}
    from ..passes.infer import infer

    try:
        net.validate()
        infer(net)
    except WorkbenchError as e:
        kind = ResourceLimitError if isinstance(e, ResourceLimitError) else ParseError
        raise kind(f"{where}: {e}") from None
    return net


def _graph(g: onnx.GraphProto, net: Network, opsets: dict, where: str, depth: int) -> Network:
    """Fill `net` from a GraphProto: the main graph (depth 0) or a subgraph nested `depth` deep."""
    for init in g.initializer:
        _add_weight(net, init.name, tensor_to_array(init, f"{where}: initializer {init.name!r}"), where)
    for vi in g.input:
        if vi.name not in net.weights:
            dtype, shape = _value_info(vi, where, typed=depth == 0)
            net.tensors[vi.name] = Tensor(vi.name, dtype, shape)
            net.inputs.append(vi.name)
    used: set = set()
    for i, node in enumerate(g.node):
        _add_node(net, node, i, opsets, where, used, depth)
    for vi in g.output:
        # A subgraph may return a value of an enclosing graph: validation checks those.
        if depth == 0 and vi.name not in net.tensors:
            raise ParseError(f"{where}: graph output {vi.name!r} is not produced by any node")
        net.outputs.append(vi.name)
    return net


def _subgraph(g: onnx.GraphProto, opsets: dict, opset: int, where: str, depth: int) -> Network:
    """A graph attribute (If branch, Loop or Scan body) as a sub-Network; nesting is bounded."""
    if depth > MAX_SUBGRAPH_DEPTH:
        raise ParseError(f"{where}: subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} deep; the model is "
                         f"malformed or hostile")
    return _graph(g, Network(g.name or "subgraph", opset=opset), opsets, where, depth)


def _add_weight(net: Network, name: str, arr: np.ndarray, where: str) -> None:
    if name in net.tensors:
        raise ParseError(f"{where}: tensor name {name!r} is defined twice")
    net.weights[name] = arr
    net.tensors[name] = Tensor(name, arr.dtype.name, tuple(arr.shape))


def _value_info(vi: onnx.ValueInfoProto, where: str, typed: bool = True):
    """(dtype, shape) of a graph input. A subgraph input may leave its type out (`typed` False): the
    op feeding it decides, and shape inference overwrites the float32 placeholder."""
    t = vi.type
    if not typed and t.WhichOneof("value") is None:
        return "float32", None
    if not t.HasField("tensor_type"):
        raise ParseError(f"{where}: input {vi.name!r} is not a tensor ({t.WhichOneof('value')}); "
                         f"only tensor inputs are supported")
    tt = t.tensor_type
    dtype = _dtype(tt.elem_type, f"{where}: input {vi.name!r}")
    if not tt.HasField("shape"):
        return dtype, None
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(fresh(f"{vi.name}_dim"))
    return dtype, tuple(dims)


def _dtype(elem_type: int, where: str) -> str:
    try:
        np_type = helper.tensor_dtype_to_np_dtype(elem_type)
    except Exception:  # noqa: BLE001
        raise ParseError(f"{where}: element type {elem_type} is not supported") from None
    name = np.dtype(np_type).name
    if name in ("object", "str") or np.dtype(np_type).kind in "OUS":
        raise ParseError(f"{where}: string tensors are not supported")
    return name


def _add_node(net: Network, node: onnx.NodeProto, index: int, opsets: dict, where: str, used: set,
              depth: int = 0) -> None:
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    name = node.name or f"{node.op_type}_{index}"
    if name in used:
        name = f"{name}_{index}"
    used.add(name)
    here = f"{where}: node {name!r} ({node.op_type})"
    attrs = node_attributes(node, here, lambda g, key: _subgraph(g, opsets, net.opset, f"{here} {key}", depth + 1))
    if node.op_type == "Constant" and domain == "":
        _add_weight(net, node.output[0], _constant_value(attrs, here), where)
        return
    plugin = lookup(node.op_type)
    if plugin is not None and spec_for(node.op_type, domain) is None:
        domain = PLUGIN_DOMAIN
    elif spec_for(node.op_type, domain) is None:
        raise ParseError(f"{here}: op {node.op_type!r} of domain {node.domain or 'ai.onnx'!r} (opset "
                         f"{opsets.get(node.domain or '', '?')}) is not supported; register a plugin with "
                         f"@workbench.plugin({node.op_type!r}, shape=...) to run it")
    if node.op_type in OPSET_SENSITIVE and domain == "":
        attrs["_opset"] = opsets.get("", 0)
    if node.op_type == "Split" and domain == "":
        attrs["_num_outputs"] = len(node.output)
    if node.op_type == "MaxPool" and domain == "":
        attrs["_indices"] = int(len(node.output) > 1 and bool(node.output[1]))  # indices cost 4x the max
    inputs = list(node.input)
    while inputs and not inputs[-1]:
        inputs.pop()
    outputs = list(node.output)
    for out in outputs:
        if out and out in net.tensors:
            raise ParseError(f"{here}: output {out!r} is already defined (the graph is not in SSA form)")
        if out:
            net.tensors[out] = Tensor(out, "float32", None)
    net.layers.append(Layer(name, node.op_type, inputs, outputs, attrs, domain))


def _constant_value(attrs: dict, where: str) -> np.ndarray:
    if len(attrs) != 1:
        raise ParseError(f"{where}: a Constant needs exactly one value attribute, got {sorted(attrs)}")
    (key, value), = attrs.items()
    kinds = {"value": None, "value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
             "value_ints": np.int64}
    if key not in kinds:
        raise ParseError(f"{where}: Constant attribute {key!r} is not supported (strings/sparse)")
    return np.asarray(value) if kinds[key] is None else np.asarray(value, dtype=kinds[key])
