"""Test helpers: run one op through onnx.reference and through workbench's kernel and shape rule."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from workbench.backends.cpu.registry import kernel_for
from workbench.dtypes import is_float
from workbench.ir.ops import Info, attributes, spec_for

OPSET = 23


def node_model(op: str, inputs: list, attrs: dict | None = None, n_out: int = 1, opset: int = OPSET,
               domain: str = "") -> tuple:
    """(ModelProto of one node, feeds); `inputs` is a list of arrays (None for omitted)."""
    names = [f"in{i}" if x is not None else "" for i, x in enumerate(inputs)]
    outs = [f"out{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, domain=domain, **(attrs or {}))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
         for n, x in zip(names, inputs) if x is not None],
        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, opset)])
    feeds = {n: x for n, x in zip(names, inputs) if x is not None}
    return model, feeds


def reference(op: str, inputs: list, attrs: dict | None = None, n_out: int = 1, opset: int = OPSET,
              domain: str = "") -> list:
    """Outputs of onnx.reference for one node; `inputs` is a list of arrays (None for omitted)."""
    model, feeds = node_model(op, inputs, attrs, n_out, opset, domain)
    return list(ReferenceEvaluator(model).run(None, feeds))


def onnxruntime(op: str, inputs: list, attrs: dict | None = None, n_out: int = 1, opset: int = OPSET) -> list:
    """Outputs of onnxruntime for one node: the oracle where onnx.reference leaves attributes out."""
    import pytest

    ort = pytest.importorskip("onnxruntime")
    model, feeds = node_model(op, inputs, attrs, n_out, opset)
    model.ir_version = min(model.ir_version, 10)  # the onnxruntime wheel may lag behind onnx
    for out in model.graph.output:  # onnxruntime infers them; UNDEFINED would be refused
        out.ClearField("type")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def ours(op: str, inputs: list, attrs: dict | None = None, domain: str = "") -> list:
    """Outputs of workbench's CPU kernel for one op, after checking its shape rule agrees."""
    spec = spec_for(op, domain)
    assert spec is not None, f"no op spec for {op}"
    full = attributes(spec, attrs or {}, op)
    fn = kernel_for(op, domain)
    assert fn is not None, f"no CPU kernel for {op}"
    out = fn(*inputs, **full)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    infos = [Info(np.asarray(x).dtype.name, tuple(np.asarray(x).shape), None) if x is not None else None
             for x in inputs]
    predicted = spec.shape_rule(*infos, **full)
    predicted = list(predicted) if isinstance(predicted, (tuple, list)) and not isinstance(predicted, Info) \
        else [predicted]
    for p, o in zip(predicted, outs):
        o = np.asarray(o)
        assert p.dtype == o.dtype.name, f"{op}: shape rule says dtype {p.dtype}, kernel gave {o.dtype}"
        if p.shape is not None:
            for pd, od in zip(p.shape, o.shape):
                assert not isinstance(pd, int) or pd == od, f"{op}: rule says shape {p.shape}, kernel {o.shape}"
            assert len(p.shape) == o.ndim, f"{op}: rule says rank {len(p.shape)}, kernel gave {o.shape}"
    return [np.asarray(o) for o in outs]


def check(op: str, inputs: list, attrs: dict | None = None, n_out: int = 1, rtol=1e-5, atol=1e-6,
          opset: int = OPSET) -> None:
    """Assert workbench matches onnx.reference on these inputs (values, dtypes and shapes)."""
    want = reference(op, inputs, attrs, n_out, opset)
    got = ours(op, inputs, attrs)
    assert len(got) >= n_out
    for w, g in zip(want, got):
        assert g.shape == w.shape, f"{op}: shape {g.shape} != reference {w.shape}"
        assert g.dtype == w.dtype, f"{op}: dtype {g.dtype} != reference {w.dtype}"
        if np.issubdtype(w.dtype, np.floating) or is_float(w.dtype.name):
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol,
                                       equal_nan=True)
        else:
            np.testing.assert_array_equal(g, w)


def rand(*shape, dtype="float32", low=-2.0, high=2.0, seed=None) -> np.ndarray:
    """Fresh random data (never zeros)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=shape).astype(dtype)
