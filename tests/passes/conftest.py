"""Test scaffolding for the pass tests: stand-in shape rules for ONNX ops not registered yet.

Pass tests build small networks by hand, which needs each op's shape rule. Where an op's real
rule is missing (op families live in other modules), a stand-in asks onnx's own shape inference,
for the duration of this test package only. Real rules always win; kernels are never stood in
for: numerics tests skip through `helpers.requires_kernels`.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper, shape_inference

from workbench.dtypes import np_dtype
from workbench.ir import dims
from workbench.ir.ops import OPS, Info, OpSpec, load_all

OPSETS = (23, 17, 13, 11, 9, 7)


def _defaults() -> dict:
    """op -> {attribute: ONNX default or None}, over every opset of every ONNX-domain op."""
    out: dict = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == "":
            attrs = out.setdefault(schema.name, {})
            for name, a in schema.attributes.items():
                default = helper.get_attribute_value(a.default_value) if a.default_value.name else None
                attrs[name] = default.decode() if isinstance(default, bytes) else default
    return out


def _value_info(name: str, info: Info):
    shape = None if info.shape is None else [d if isinstance(d, int) else str(d) for d in info.shape]
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np_dtype(info.dtype)), shape)


def _onnx_rule(op: str):
    def rule(*infos, **attrs):
        n_out = onnx.defs.get_schema(op).min_output
        names = [f"in{i}" if info is not None else "" for i, info in enumerate(infos)]
        present = [(n, i) for n, i in zip(names, infos) if i is not None]
        inits = [numpy_helper.from_array(np.asarray(i.value), n) for n, i in present if isinstance(i.value, np.ndarray)]
        given = {k: v for k, v in attrs.items() if v is not None and not k.startswith("_")}
        node = helper.make_node(op, names, [f"out{i}" for i in range(n_out)], **given)
        graph = helper.make_graph([node], "g", [_value_info(n, i) for n, i in present], [], inits)
        for opset in OPSETS:
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
            try:
                inferred = shape_inference.infer_shapes(model, strict_mode=True)
                break
            except Exception:  # noqa: BLE001 - this opset does not take these attributes/inputs
                continue
        else:
            raise ValueError(f"onnx shape inference rejects {op} with {given}")
        found = {vi.name: vi.type.tensor_type for vi in inferred.graph.value_info}
        return tuple(_info(found.get(f"out{i}")) for i in range(n_out))

    return rule


def _info(tt) -> Info:
    if tt is None:
        return Info("float32", None)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
    if not tt.HasField("shape"):
        return Info(dtype, None)
    return Info(dtype, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or dims.fresh())
                             for d in tt.shape.dim))


@pytest.fixture(scope="package", autouse=True)
def stand_in_shape_rules():
    """Register stand-in rules for the missing ops while this package's tests run."""
    load_all()
    defaults = {op: d for op, d in _defaults().items() if ("", op) not in OPS}
    for op, attrs in defaults.items():
        OPS[("", op)] = OpSpec(op, 1, attrs, _onnx_rule(op), deterministic=not op.startswith("Random"))
    yield
    for op in defaults:
        OPS.pop(("", op), None)
