"""Mutators for the fuzzers: damaged ONNX bytes and fields, forged plan headers, hostile dim expressions.

Each takes a `random.Random`, so a case is reproduced from its seed (see fuzzers.run_case).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import random

import onnx
from onnx import helper

from .graph_maker import random_graph


def seed_models(rng: random.Random) -> onnx.ModelProto:
    """A model to mutate: the zoo's digits CNN, a tiny hand-written one, one with control flow (If,
    Loop, Scan, nested subgraphs), or a random valid graph."""
    choice = rng.randrange(4)
    if choice == 0:
        return copy.deepcopy(_digits())
    if choice == 1:
        from tests.models.tiny import add_relu

        return add_relu(seed=rng.randrange(100))
    if choice == 2:
        from tests.models import control

        makers = [control.if_model, control.loop_model, control.scan_model, lambda: control.nested_model(3)]
        return rng.choice(makers)()
    return random_graph(rng, 6)


_DIGITS: list = []


def _digits() -> onnx.ModelProto:
    if not _DIGITS:
        from workbench.zoo import digits

        _DIGITS.append(onnx.load(str(digits().model)))
    return _DIGITS[0]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip, overwrite, insert or delete a few bytes, or truncate."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        kind, pos = rng.randrange(5), rng.randrange(len(buf))
        if kind == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            buf[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif kind == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 3:
            del buf[pos:pos + rng.randint(1, 8)]
        else:
            del buf[pos:]
    return bytes(buf)


HUGE = [2**31, 2**40, 2**62, 2**63 - 1]
ODD_INTS = [0, 1, -1, -2, 3, 7, 2**31 - 1, -(2**31), *HUGE, -(2**62)]


def _odd_int(rng: random.Random) -> int:
    return rng.choice(ODD_INTS) if rng.random() < 0.7 else rng.randint(-10, 10)


def _all_names(model) -> list:
    g = model.graph
    return [n for node in g.node for n in list(node.input) + list(node.output) if n] + \
        [i.name for i in g.initializer] + [i.name for i in g.input]


def _mutate_dims(model, rng):
    """A graph input or initializer gets odd dims (huge, negative, zero, symbolic)."""
    g = model.graph
    if g.input and rng.random() < 0.5:
        vi = rng.choice(list(g.input))
        dims = vi.type.tensor_type.shape.dim
        if not dims:
            dims.add()
        d = rng.choice(list(dims))
        if rng.random() < 0.2:
            d.dim_param = rng.choice(["n", "", "a*b", "((((", "__import__('os')", "n" * 500])
        else:
            d.dim_value = _odd_int(rng)
    elif g.initializer:
        t = rng.choice(list(g.initializer))
        if t.dims and rng.random() < 0.7:
            t.dims[rng.randrange(len(t.dims))] = _odd_int(rng)
        else:
            t.dims.append(_odd_int(rng))


def _mutate_dtype(model, rng):
    """An input, output or initializer gets another element type code (valid or not)."""
    g = model.graph
    code = rng.choice(list(range(0, 26)) + [99, -1])
    pools = [p for p in (g.input, g.output, g.initializer) if len(p)]
    target = rng.choice(list(rng.choice(pools)))
    if isinstance(target, onnx.TensorProto):
        target.data_type = max(code, 0)
    else:
        target.type.tensor_type.elem_type = max(code, 0)


def _mutate_attribute(model, rng):
    """An attribute gets an odd value, another type, or is added to / removed from a node."""
    nodes = list(model.graph.node)
    if not nodes:
        return
    node = rng.choice(nodes)
    if node.attribute and rng.random() < 0.7:
        attr = rng.choice(list(node.attribute))
        choice = rng.randrange(5)
        if choice == 0:
            attr.type, attr.i = onnx.AttributeProto.INT, _odd_int(rng)
        elif choice == 1:
            attr.type, attr.f = onnx.AttributeProto.FLOAT, rng.choice([math.nan, math.inf, -1.0, 1e30, 0.0])
        elif choice == 2:
            del attr.ints[:]
            attr.type = onnx.AttributeProto.INTS
            attr.ints.extend(_odd_int(rng) for _ in range(rng.randint(0, 6)))
        elif choice == 3:
            attr.type, attr.s = onnx.AttributeProto.STRING, rng.choice([b"", b"\xff\xfe", b"SAME_UPPER", b"x" * 100])
        else:
            node.attribute.remove(attr)
    else:
        name = rng.choice(["axis", "perm", "pads", "kernel_shape", "group", "strides", "alpha", "bogus", "to",
                           "keepdims", "dilations", "auto_pad", "value"])
        node.attribute.append(helper.make_attribute(name, rng.choice([_odd_int(rng), [1, 2], 0.5, "VALID"])))


def _mutate_names(model, rng):
    """Dangling inputs, duplicate outputs or initializers, renamed graph outputs, empty names."""
    g = model.graph
    names = _all_names(model) or ["x"]
    choice = rng.randrange(5)
    nodes = list(g.node)
    if choice == 0 and nodes:
        node = rng.choice(nodes)
        if node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(["ghost", "", node.output[0] if node.output
                                                                     else "x"])
    elif choice == 1 and len(nodes) > 1:
        a, b = rng.sample(nodes, 2)
        if a.output and b.output:
            b.output[0] = a.output[0]
    elif choice == 2 and g.initializer:
        dup = copy.deepcopy(rng.choice(list(g.initializer)))
        dup.name = rng.choice(names)
        g.initializer.append(dup)
    elif choice == 3 and g.output:
        g.output[rng.randrange(len(g.output))].name = rng.choice(names + ["nowhere"])
    elif nodes:
        rng.choice(nodes).output.append(rng.choice(names))


def _mutate_structure(model, rng):
    """Drop or duplicate a node, swap two nodes (order), change an op type, domain or the opset."""
    g = model.graph
    nodes = list(g.node)
    choice = rng.randrange(6)
    if choice == 0 and nodes:
        g.node.remove(rng.choice(nodes))
    elif choice == 1 and nodes:
        g.node.append(copy.deepcopy(rng.choice(nodes)))
    elif choice == 2 and len(nodes) > 1:
        i, j = rng.sample(range(len(nodes)), 2)
        a, b = copy.deepcopy(nodes[i]), copy.deepcopy(nodes[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
    elif choice == 3 and nodes:
        rng.choice(nodes).op_type = rng.choice(["Relu", "Conv", "MaxPool", "Reshape", "Gemm", "Add", "Concat",
                                                "Range", "Expand", "Tile", "If", "Loop", "Nope", ""])
    elif choice == 4 and nodes:
        rng.choice(nodes).domain = rng.choice(["ai.onnx.ml", "com.microsoft", "workbench.plugin", "x"])
    else:
        model.opset_import[0].version = rng.choice([1, 6, 7, 11, 13, 18, 21, 23, 24, 99, 2**40])


def _mutate_tensor_data(model, rng):
    """Initializer data of the wrong length, or pointing at external data that does not exist."""
    g = model.graph
    if not g.initializer:
        return
    t = rng.choice(list(g.initializer))
    if rng.random() < 0.5 and t.raw_data:
        t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data))]
    else:
        t.data_location = onnx.TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", rng.choice(["w.bin", "../w.bin", "/etc/passwd", ""])


PROTO_MUTATIONS = [_mutate_dims, _mutate_dtype, _mutate_attribute, _mutate_names, _mutate_structure,
                   _mutate_tensor_data]


def mutate_proto(model: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    """Apply 1..3 field-level mutations through the protobuf API (the model is changed in place)."""
    for _ in range(rng.randint(1, 3)):
        rng.choice(PROTO_MUTATIONS)(model, rng)
    return model


def mutate_plan_bytes(data: bytes, rng: random.Random) -> bytes:
    """Bit flips or truncation anywhere in the file (the checksum should catch most)."""
    return mutate_bytes(data, rng)


def forge_plan(data: bytes, rng: random.Random) -> bytes:
    """Mutate the JSON header and re-seal the file with a valid checksum: what an attacker can do.

    The checksum guards against accidents, not forgers, so everything behind it must hold too.
    """
    from workbench.runtime import plan as P

    magic, version, head_len = P._PREFIX.unpack_from(data)
    header = json.loads(data[P._PREFIX.size:P._PREFIX.size + head_len])
    start = P._PREFIX.size + head_len
    start += -start % P._ALIGN
    blob = data[start:-P._DIGEST]
    for _ in range(rng.randint(1, 3)):
        _mutate_json(header, rng)
    head = json.dumps(header).encode()
    body = P._PREFIX.pack(magic, version, len(head)) + head
    body += b"\0" * (-len(body) % P._ALIGN) + blob
    return body + hashlib.sha256(body).digest()


def _json_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_paths(v, path + (i,))


def _odd_json(rng: random.Random):
    return rng.choice([None, True, 0, -1, 2**40, 2**64, 1.5, math.inf, "", "cpu", "x" * 50, "__import__('os')",
                       "os.system", [], [1, 2], {}, {"a": 1}, [[2**40, 2**40]], "float32", "object", "Relu",
                       "batch", {"__ndarray__": "int64", "shape": [2], "data": "AAAA"}])


def _mutate_json(header: dict, rng: random.Random) -> None:
    """Replace, delete or duplicate one value somewhere in the header tree."""
    paths = [p for p in _json_paths(header) if p]
    path = rng.choice(paths)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    choice = rng.randrange(4)
    if choice == 0 or not isinstance(parent, (list, dict)):
        parent[key] = _odd_json(rng)
    elif choice == 1:
        del parent[key]
    elif choice == 2 and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif isinstance(parent[key], int) and not isinstance(parent[key], bool):
        parent[key] = _odd_int(rng)
    else:
        parent[key] = _odd_json(rng)


# ---------------------------------------------------------------------------- dims expressions
def random_dim_expression(rng: random.Random, depth: int = 0) -> str:
    """A string for the safe dim evaluator: valid arithmetic, junk, or attempts at code."""
    if depth > 4 or rng.random() < 0.3:
        return rng.choice(["batch", "seq", "n", str(rng.randint(-5, 10**6)), "0", "ceil", "__class__",
                           "__import__('os').system('echo pwned')", "().__class__.__bases__[0]", "a.b", "lambda: 1",
                           "[1]*10**9", "9" * 50, "'s'", "1e308", "True", "None", "x[0]", "f(1)", "ceil(1, 2)"])
    op = rng.choice(["+", "-", "*", "//", "/", "**", "%", "<<", " if 1 else ", ","])
    left, right = random_dim_expression(rng, depth + 1), random_dim_expression(rng, depth + 1)
    expr = f"{left}{op}{right}"
    return f"ceil({expr})" if rng.random() < 0.2 else f"({expr})" if rng.random() < 0.5 else expr
