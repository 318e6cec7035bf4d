"""Small ONNX models for the tool tests, written with onnx.helper from Add and Relu only."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import workbench as wb


def add_relu_model(width: int = 64, depth: int = 2, seed: int = 0, output: str = "y",
                   batch="batch") -> onnx.ModelProto:
    """x (batch, width) -> [Add w_i -> Relu] * depth -> output; layers add1, relu1, add2, relu2, ..."""
    rng = np.random.default_rng(seed)
    nodes, weights, prev = [], [], "x"
    for i in range(1, depth + 1):
        last = i == depth
        weights.append(numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("Add", [prev, f"w{i}"], [f"a{i}"], name=f"add{i}"))
        prev = output if last else f"r{i}"
        nodes.append(helper.make_node("Relu", [f"a{i}"], [prev], name=f"relu{i}"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])
    y = helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, width])
    graph = helper.make_graph(nodes, "add_relu", [x], [y], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def engine_of(model, max_batch: int = 8, precision: str = "fp32"):
    return wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu", max_batch=max_batch, precision=precision))


def tamper(engine, weight: str, delta: float = 0.5):
    """Make an engine wrong on purpose: shift one weight (new contexts see the change)."""
    engine.network.weights[weight] = engine.network.weights[weight] + np.float32(delta)
    return engine


FAST = {"warmup_ms": 10, "duration_s": 0.2, "iterations": 10}
