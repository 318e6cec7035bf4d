"""Small ONNX graphs and measuring helpers for the hardening tests."""
from __future__ import annotations

import contextlib
import time
import tracemalloc

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def value_info(name: str, array_or_dtype, shape=None) -> onnx.ValueInfoProto:
    """A graph input/output declaration; the dtype and shape may come from an example array."""
    if isinstance(array_or_dtype, np.ndarray):
        dtype, shape = array_or_dtype.dtype, array_or_dtype.shape
    else:
        dtype = np.dtype(array_or_dtype)
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype), shape)


def one_node_model(op: str, inputs: list, initializers: dict, graph_inputs: dict, opset: int = OPSET,
                   **attrs) -> onnx.ModelProto:
    """Model with one node `op(inputs) -> y`: `initializers` become constants, `graph_inputs` inputs.

    Both map names to example arrays; "" in `inputs` is an omitted optional input.
    """
    node = helper.make_node(op, inputs, ["y"], name=f"the_{op.lower()}", **attrs)
    graph = helper.make_graph(
        [node], op.lower(), [value_info(n, a) for n, a in graph_inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def chain_model(length: int, op: str = "Relu") -> onnx.ModelProto:
    """x -> op -> op -> ... (`length` nodes): a graph far deeper than Python's recursion limit."""
    nodes = [helper.make_node(op, [f"t{i}" if i else "x"], [f"t{i + 1}"], name=f"n{i}") for i in range(length)]
    graph = helper.make_graph(nodes, "chain", [value_info("x", np.float32, [4])],
                              [value_info(f"t{length}", np.float32, [4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


class Footprint:
    """Wall time and peak traced Python/NumPy allocation of the code inside `with measure() as f:`."""

    seconds: float = 0.0
    peak_bytes: int = 0


@contextlib.contextmanager
def measure():
    """Measure a block: tracemalloc sees NumPy's allocations too (and even refused huge requests)."""
    f = Footprint()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield f
    finally:
        f.seconds = time.perf_counter() - start
        f.peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
