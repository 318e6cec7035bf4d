"""Hand-made node test cases, shaped like onnx's TestCase, for testing the harness without the suite."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from onnx.backend.test.case.test_case import TestCase


def single_node_case(name: str, op: str, inputs: dict, outputs: dict, opset: int = 17, declared: dict | None = None,
                     **attrs) -> TestCase:
    """A TestCase running one `op` node on {name: array} inputs, expecting {name: array} outputs.

    declared: {tensor name: shape the model declares} (e.g. ("n", 4)); by default the arrays' shapes.
    """
    declared = declared or {}
    info = lambda n, a: helper.make_tensor_value_info(  # noqa: E731
        n, helper.np_dtype_to_tensor_dtype(a.dtype), declared.get(n, a.shape))
    graph = helper.make_graph([helper.make_node(op, list(inputs), list(outputs), **attrs)], name,
                              [info(n, a) for n, a in inputs.items()], [info(n, a) for n, a in outputs.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return TestCase(name=name, model_name=name, url=None, model_dir=None, model=model,
                    data_sets=[(list(inputs.values()), list(outputs.values()))], kind="node", rtol=1e-3, atol=1e-7)


def relu_case(name: str = "test_relu_handmade", wrong: bool = False, seed: int = 0) -> TestCase:
    """Relu on random data; `wrong=True` makes the expected output off by one (as a broken test would be)."""
    x = np.random.default_rng(seed).standard_normal((3, 4)).astype(np.float32)
    y = np.maximum(x, 0) + np.float32(1 if wrong else 0)
    return single_node_case(name, "Relu", {"x": x}, {"y": y})


def sequence_case(name: str = "test_sequence_handmade") -> TestCase:
    """A case whose input is a sequence of tensors: out of scope for workbench."""
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["s"], ["n"])], name,
        [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data = [([[np.ones(2, np.float32)]], [np.array(1, np.int64)])]
    return TestCase(name=name, model_name=name, url=None, model_dir=None, model=model, data_sets=data,
                    kind="node", rtol=1e-3, atol=1e-7)
