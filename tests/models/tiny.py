"""Tiny ONNX models written with onnx.helper, for tests that need a model file."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def add_relu(batch="batch", features=4, opset=17, seed=0) -> onnx.ModelProto:
    """y = relu(x + w): the smallest model that exercises a weight, a broadcast and an activation."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal(features).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, features])
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"], name="add"),
                           helper.make_node("Relu", ["t"], ["y"], name="relu")], "add_relu", [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
