"""ONNX -> Network. The only module (with onnx_attributes) that reads ONNX protobufs.

    >>> net = workbench.load_onnx("model.onnx")
"""
from __future__ import annotations

import heapq
import math
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from ..dtypes import np_dtype
from ..errors import ParseError, ResourceLimitError, WorkbenchError
from ..ir import Layer, Network, Tensor
from ..ir.dims import fresh
from ..ir.network import MAX_SUBGRAPH_DEPTH
from ..ir.ops import spec_for
from ..limits import default_tensor_limit, format_bytes
from ..plugins import PLUGIN_DOMAIN, lookup
from .onnx_attributes import node_attributes, tensor_to_array

# Ops whose semantics changed across opsets in a way a kernel cannot see from its attributes.
OPSET_SENSITIVE = {"Softmax", "LogSoftmax", "Hardmax", "GroupNormalization", "DFT", "Scan"}
MIN_OPSET = 7
MAX_PROTO_BYTES = 2**31 - 1  # protobuf cannot serialize a message larger than this


def load_onnx(model, name: str | None = None) -> Network:
    """Parse an ONNX model (path, bytes or ModelProto) into a Network with inferred shapes.

    >>> net = load_onnx("resnet50.onnx")
    """
    proto, where, base_dir = _read(model)
    bad = next(_undecodable_strings(proto), None)
    if bad is not None:
        raise ParseError(f"{where}: field {bad} holds text that is not UTF-8; the file is corrupted: "
                         f"re-export the model")
    try:
        from onnx import inliner

        if proto.functions:
            proto = inliner.inline_local_functions(proto)
    except Exception as e:  # noqa: BLE001 - the inliner raises plain exceptions on bad functions
        raise ParseError(f"{where}: its model-local functions cannot be inlined: {e}") from None
    return convert(proto, where, name)


def _undecodable_strings(message):
    """Names of string fields holding bytes: protobuf hands over invalid UTF-8 (e.g. a flipped bit in an op
    type) as bytes, which every later step would trip on."""
    for field, value in message.ListFields():
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        values = value if repeated else [value]
        if field.type == field.TYPE_MESSAGE:
            for item in values:
                yield from _undecodable_strings(item)
        elif field.type == field.TYPE_STRING and any(isinstance(v, bytes) for v in values):
            yield field.full_name


def _read(model):
    if isinstance(model, onnx.ModelProto):
        return model, "model", None
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _parse_bytes(bytes(model), "model bytes"), "model bytes", None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ParseError(f"{path}: no such file; give the path of an .onnx model")
        _check_proto_size(path.stat().st_size, str(path))
        proto = _parse_bytes(path.read_bytes(), str(path))
        _load_external_data(proto, path)
        return proto, str(path), path.parent
    raise ParseError(f"load_onnx takes a path, bytes or onnx.ModelProto, not {type(model).__name__}")


def _check_proto_size(nbytes: int, where: str) -> None:
    """Refuse, before reading it, a file over protobuf's 2 GiB limit (no valid ONNX file is)."""
    if nbytes > MAX_PROTO_BYTES:
        raise ParseError(f"{where}: {nbytes / 2**30:.1f} GiB is over the 2 GiB limit of an ONNX protobuf; "
                         f"save the weights as external data (onnx.save_model(model, path, "
                         f"save_as_external_data=True)) and load the .onnx file next to them")


def _parse_bytes(data: bytes, where: str) -> onnx.ModelProto:
    _check_proto_size(len(data), where)
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ParseError(f"{where}: not a valid ONNX protobuf ({e}); check that it is an .onnx model file, "
                         f"whole (not truncated)") from None
    if not proto.HasField("graph"):
        raise ParseError(f"{where}: the model has no graph; check that it is an .onnx model file")
    return proto


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """Read external initializers into the protobuf, refusing locations that leave the model's folder.

    Exactly the bytes each tensor's dims need are read, so a tensor cannot pull in a huge file.
    """
    from onnx import external_data_helper as ext

    folder = path.parent.resolve()
    for t in ext._get_all_tensors(proto):
        if ext.uses_external_data(t):
            here = f"{path}: initializer {t.name!r}"
            info = {e.key: e.value for e in t.external_data}
            t.raw_data = _read_external(folder, info, _external_nbytes(t, here), here)
            del t.external_data[:]
            t.data_location = onnx.TensorProto.DEFAULT


def _external_file(folder: Path, loc: str, where: str) -> Path:
    """The data file `loc` names, after resolving symlinks; it must lie inside `folder`."""
    try:
        target = (folder / loc).resolve() if loc and not os.path.isabs(loc) else None
    except (OSError, ValueError):  # a null byte, a symlink loop
        target = None
    if target is None or folder not in target.parents:
        raise ParseError(f"{where} points at external data {loc!r} outside the model's folder {folder}; "
                         f"move the data next to the model")
    if not target.is_file():
        raise ParseError(f"{where} needs external data file {loc!r}, which is missing from {folder}")
    return target


def _external_nbytes(t: onnx.TensorProto, where: str) -> int:
    """Bytes the tensor's dims and type take, refused up front when over the tensor limit."""
    dtype = _dtype(t.data_type, where)
    count = math.prod(int(d) for d in t.dims)
    if count < 0:
        raise ParseError(f"{where} has negative dims {list(t.dims)}; the model is corrupted: re-export it")
    bits = 4 if dtype in ("int4", "uint4", "float4_e2m1fn") else np_dtype(dtype).itemsize * 8
    nbytes = -(-count * bits // 8)
    limit = default_tensor_limit()
    if nbytes > limit:
        raise ResourceLimitError(f"{where} ({dtype}{list(t.dims)}) would take {format_bytes(nbytes)}, over "
                                 f"the limit of {format_bytes(limit)}; the model is malformed, or raise "
                                 f"the limit with workbench.limits.set_tensor_limit")
    return nbytes


def _read_external(folder: Path, info: dict, nbytes: int, where: str) -> bytes:
    target = _external_file(folder, info.get("location", ""), where)
    try:
        offset, length = int(info.get("offset", 0)), int(info.get("length", nbytes))
    except ValueError:
        raise ParseError(f"{where}: external data offset/length {info} are not integers") from None
    if offset < 0 or length != nbytes:
        raise ParseError(f"{where}: external data at offset {offset} of length {length} does not match the "
                         f"{nbytes} bytes its dims need; the model is corrupted")
    with open(target, "rb") as f:
        f.seek(offset)
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise ParseError(f"{where}: external data file {target.name!r} ends before the {nbytes} bytes at offset "
                         f"{offset} (truncated?)")
    return data


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
    except ResourceLimitError as e:
        raise ResourceLimitError(f"{where}: {e}") from None
    except WorkbenchError as e:
        raise ParseError(f"{where}: {e}; the model is invalid: check it with onnx.checker.check_model(model, "
                         f"full_check=True) and fix or re-export it") from None
    return net


def _in_order(nodes, available: set, where: str) -> list:
    """Node indices in an order where each node follows the producers of its inputs.

    ONNX requires the file's order to be such an order, but hand-edited files break it; the file's
    order is kept wherever it is valid. A cycle is an error naming the nodes on it or behind it.
    """
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    waiting, readers = [0] * len(nodes), [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for name in set(node.input):
            if name and name not in available and name in producer:
                waiting[i] += 1
                readers[producer[name]].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in readers[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(nodes):
        stuck = [nodes[i].name or f"{nodes[i].op_type}_{i}" for i, w in enumerate(waiting) if w]
        raise ParseError(f"{where}: the graph has a cycle: nodes {stuck[:10]}{' ...' if len(stuck) > 10 else ''} "
                         f"wait on each other's outputs; an ONNX graph must be acyclic — fix the file "
                         f"(was it edited by hand?)")
    return order


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
    for i in _in_order(g.node, set(net.tensors), where):
        _add_node(net, g.node[i], i, opsets, where, used, depth)
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
    _check_attribute_types(node, domain, opsets, here)
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


def _check_attribute_types(node: onnx.NodeProto, domain: str, opsets: dict, where: str) -> None:
    """Each attribute must have the type ONNX's schema gives it (a file may say anything)."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, opsets.get("", 0)), domain)
    except onnx.defs.SchemaError:
        try:  # an op newer than the model's opset: its latest definition still says the types
            schema = onnx.defs.get_schema(node.op_type, domain)
        except onnx.defs.SchemaError:
            return  # a plugin or an op unknown to this onnx: its own checks apply
    for attr in node.attribute:
        expected = schema.attributes.get(attr.name)
        if expected is not None and attr.type != int(expected.type):
            raise ParseError(f"{where}: attribute {attr.name!r} is {onnx.AttributeProto.AttributeType.Name(attr.type)}"
                             f" but ONNX defines it as {expected.type.name}; fix or re-export the model")


def _constant_value(attrs: dict, where: str) -> np.ndarray:
    if len(attrs) != 1:
        raise ParseError(f"{where}: a Constant needs exactly one value attribute, got {sorted(attrs)}")
    (key, value), = attrs.items()
    kinds = {"value": None, "value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
             "value_ints": np.int64}
    if key not in kinds:
        raise ParseError(f"{where}: Constant attribute {key!r} is not supported (strings/sparse)")
    return np.asarray(value) if kinds[key] is None else np.asarray(value, dtype=kinds[key])
