"""Every WorkbenchError says what is wrong, where (file, node, tensor, option) and what to do.

A representative error of each kind is triggered; its message must name the thing at fault and
the place, and carry an instruction (a verb telling the user what to do next).
"""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import helper

import workbench as wb
from workbench import limits

from .graphs import one_node_model, value_info

f32 = np.float32
# what-to-do: an instruction, or a statement of the valid choices
ADVICE = re.compile(r"\b(use|give|pass|rebuild|register|raise|move|check|fix|re-export|delete|load|install|"
                    r"convert|upgrade|import|save|set|create|feed|remove|call|write|must be|expected|"
                    r"the engine takes)\b|known:", re.I)


def _model_file(tmp_path, model, name="model.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _relu_engine(shape=("batch", 4), max_batch=2):
    model = one_node_model("Relu", ["x"], {}, {})
    model.graph.input.append(value_info("x", np.float32, list(shape)))
    return wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu", max_batch=max_batch))


def _bad_attribute_kind(tmp_path):
    model = one_node_model("Softmax", ["x"], {}, {"x": np.ones((2, 3), f32)}, axis=1)
    model.graph.node[0].attribute[0].CopyFrom(helper.make_attribute("axis", "one"))
    return wb.load_onnx(_model_file(tmp_path, model))


def _unknown_attribute(tmp_path):
    model = one_node_model("Relu", ["x"], {}, {"x": np.ones(3, f32)}, slope=2)
    return wb.load_onnx(_model_file(tmp_path, model))


def _bad_reshape(tmp_path):
    model = one_node_model("Reshape", ["x", "s"], {"s": np.array([4], np.int64)}, {"x": np.ones((2, 3), f32)})
    return wb.load_onnx(_model_file(tmp_path, model))


def _unsupported_op(tmp_path):
    model = one_node_model("Relu", ["x"], {}, {"x": np.ones(3, f32)})
    model.graph.node[0].op_type = "FancyOp"
    return wb.load_onnx(_model_file(tmp_path, model))


def _cycle(tmp_path):
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="second")]
    graph = helper.make_graph(nodes, "g", [value_info("x", np.float32, [2])], [value_info("b", np.float32, [2])])
    return wb.load_onnx(_model_file(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])))


def _dangling(tmp_path):
    model = one_node_model("Relu", ["ghost"], {}, {"x": np.ones(3, f32)})
    return wb.load_onnx(_model_file(tmp_path, model))


def _omitted_required_input(tmp_path):
    model = one_node_model("Add", ["", "x"], {}, {"x": np.ones(3, f32)})
    return wb.load_onnx(_model_file(tmp_path, model))


def _constant_bomb(tmp_path):
    model = one_node_model("ConstantOfShape", ["shape"], {"shape": np.array([2**20, 2**20], np.int64)}, {})
    return wb.load_onnx(_model_file(tmp_path, model))


def _run_time_bomb(tmp_path):
    model = one_node_model("ConstantOfShape", ["shape"], {}, {"shape": np.array([1, 1], np.int64)})
    engine = wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu"))
    return engine.create_execution_context().execute({"shape": np.array([2**20, 2**20], np.int64)})


def _kernel_failure(tmp_path):
    model = one_node_model("Reshape", ["x", "shape"], {}, {"x": np.ones((2, 3), f32), "shape": np.array([6], np.int64)})
    engine = wb.build(wb.load_onnx(_model_file(tmp_path, model)), wb.BuilderConfig(device="cpu"))
    return engine.create_execution_context().execute({"x": np.ones((2, 3), f32), "shape": np.array([4], np.int64)})


def _external_outside(tmp_path):
    model = one_node_model("Add", ["x", "w"], {}, {"x": np.ones(4, f32)})
    w = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[4], data_location=onnx.TensorProto.EXTERNAL)
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../elsewhere.bin"
    model.graph.initializer.append(w)
    return wb.load_onnx(_model_file(tmp_path, model))


def _huge_file(tmp_path):
    path = tmp_path / "huge.onnx"
    with open(path, "wb") as f:
        f.truncate(3 << 30)
    return wb.load_onnx(path)


def _garbage_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_bytes(b"\xff\xff\xff\xff this is not a model")
    return wb.load_onnx(path)


def _old_opset(tmp_path):
    model = one_node_model("Relu", ["x"], {}, {"x": np.ones(3, f32)}, opset=5)
    return wb.load_onnx(_model_file(tmp_path, model))


def _missing_profile(tmp_path):
    model = one_node_model("Relu", ["x"], {}, {})
    model.graph.input.append(value_info("x", np.float32, ["n", "m"]))
    return wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu"))


def _profile_for_unknown_input(tmp_path):
    model = one_node_model("Relu", ["x"], {}, {"x": np.ones(3, f32)})
    return wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu", profiles=[{"y": ((1,), (1,), (1,))}]))


def _shapes_over_the_memory_limit(tmp_path):
    model = one_node_model("Relu", ["x"], {}, {})
    model.graph.input.append(value_info("x", np.float32, ["batch", 1024]))
    return wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu", max_batch=4096, memory_limit="1MiB"))


def _wrong_input_name(tmp_path):
    return _relu_engine().create_execution_context().execute({"images": np.ones((1, 4), f32)})


def _wrong_dtype(tmp_path):
    return _relu_engine().create_execution_context().execute({"x": np.ones((1, 4), np.float64)})


def _outside_profile(tmp_path):
    return _relu_engine().create_execution_context().execute({"x": np.ones((9, 4), f32)})


def _plan_bytes(tmp_path):
    path = tmp_path / "model.plan"
    _relu_engine().save(path)
    return path


def _truncated_plan(tmp_path):
    path = _plan_bytes(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    return wb.load_plan(path)


def _corrupted_plan(tmp_path):
    path = _plan_bytes(tmp_path)
    data = bytearray(path.read_bytes())
    data[200] ^= 0x10
    path.write_bytes(bytes(data))
    return wb.load_plan(path)


def _newer_plan(tmp_path):
    path = _plan_bytes(tmp_path)
    data = bytearray(path.read_bytes())
    data[8] = 99
    path.write_bytes(bytes(data))
    return wb.load_plan(path)


def _not_a_plan(tmp_path):
    path = tmp_path / "model.plan"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    return wb.load_plan(path)


def _unregistered_plugin(tmp_path):
    name = "HardeningSwish"

    @wb.plugin(name, shape=lambda x, **_: x, replace=True)
    def swish(x, *, beta=1.0):
        return x / (1 + np.exp(-beta * x))

    net = wb.Network("p")
    x = net.add_input("x", "float32", (4,))
    net.mark_output(net.add_plugin(name, [x]).output)
    path = tmp_path / "plugin.plan"
    wb.build(net, wb.BuilderConfig(device="cpu")).save(path)
    from workbench.plugins import unregister

    unregister(name)
    return wb.load_plan(path)


def _bad_config(tmp_path):
    return wb.BuilderConfig(precision="fp64")


def _bad_workspace(tmp_path):
    return wb.BuilderConfig(workspace="lots")


def _bad_threads(tmp_path):
    return wb.BuilderConfig(cpu_threads=2**40)


def _set_limit_then_bomb(tmp_path):
    saved = limits._override
    limits.set_tensor_limit(1 << 20)
    try:
        model = one_node_model("Relu", ["x"], {}, {})
        model.graph.input.append(value_info("x", np.float32, [1024, 1024]))
        return wb.load_onnx(_model_file(tmp_path, model))
    finally:
        limits._override = saved


def _pickled_input(tmp_path):
    from workbench.cli import read_array_file

    path = tmp_path / "input.npy"
    np.save(path, np.array([None]), allow_pickle=True)
    return read_array_file(str(path))


# label: (trigger, error class, substrings that must appear: the thing at fault and where)
CASES = {
    "missing model file": (lambda t: wb.load_onnx(t / "nope.onnx"), wb.ParseError, ["nope.onnx"]),
    "garbage model file": (_garbage_file, wb.ParseError, ["notes.onnx", "ONNX"]),
    "model over 2 GiB": (_huge_file, wb.ParseError, ["huge.onnx", "2 GiB"]),
    "old opset": (_old_opset, wb.ParseError, ["model.onnx", "opset 5"]),
    "unsupported op": (_unsupported_op, wb.ParseError, ["model.onnx", "the_relu", "FancyOp"]),
    "cycle": (_cycle, wb.ParseError, ["model.onnx", "first", "second"]),
    "dangling input": (_dangling, wb.ParseError, ["model.onnx", "the_relu", "ghost"]),
    "omitted required input": (_omitted_required_input, wb.ParseError, ["model.onnx", "the_add", "input 0"]),
    "attribute of the wrong kind": (_bad_attribute_kind, wb.ParseError, ["model.onnx", "the_softmax", "axis"]),
    "unknown attribute": (_unknown_attribute, wb.ParseError, ["model.onnx", "the_relu", "slope"]),
    "shapes that do not fit": (_bad_reshape, wb.ParseError, ["model.onnx", "the_reshape", "(2, 3)"]),
    "kernel failure": (_kernel_failure, wb.ExecutionError, ["the_reshape", "Reshape", "(2, 3)"]),
    "constant bomb": (_constant_bomb, wb.ResourceLimitError, ["model.onnx", "the_constantofshape", "'y'", "TiB"]),
    "run-time bomb": (_run_time_bomb, wb.ResourceLimitError, ["the_constantofshape", "'y'", "TiB"]),
    "input over a set limit": (_set_limit_then_bomb, wb.ResourceLimitError, ["model.onnx", "'x'", "1.0 MiB"]),
    "external data outside": (_external_outside, wb.ParseError, ["model.onnx", "'w'", "../elsewhere.bin"]),
    "no profile for dynamic dims": (_missing_profile, wb.ConfigError, ["'x'", "profiles"]),
    "profile names no input": (_profile_for_unknown_input, wb.ConfigError, ["'y'", "inputs"]),
    "profile over the memory limit": (_shapes_over_the_memory_limit, wb.ResourceLimitError, ["'x'", "memory_limit"]),
    "wrong input name": (_wrong_input_name, wb.ExecutionError, ["images", "'x'"]),
    "wrong input dtype": (_wrong_dtype, wb.ExecutionError, ["'x'", "float64", "float32"]),
    "shape outside the profile": (_outside_profile, wb.ExecutionError, ["'x'", "(9, 4)"]),
    "truncated plan": (_truncated_plan, wb.PlanFormatError, ["model.plan", "truncated"]),
    "corrupted plan": (_corrupted_plan, wb.PlanFormatError, ["model.plan", "checksum"]),
    "plan from the future": (_newer_plan, wb.PlanFormatError, ["model.plan", "version 99"]),
    "not a plan": (_not_a_plan, wb.PlanFormatError, ["model.plan", "magic"]),
    "unregistered plugin": (_unregistered_plugin, wb.PluginError, ["plugin.plan", "HardeningSwish"]),
    "bad precision": (_bad_config, wb.ConfigError, ["precision", "fp64"]),
    "bad workspace": (_bad_workspace, wb.ConfigError, ["workspace", "lots"]),
    "bad thread count": (_bad_threads, wb.ConfigError, ["cpu_threads"]),
    "pickled input file": (_pickled_input, wb.WorkbenchError, ["input.npy", "Python objects"]),
}


@pytest.mark.parametrize("label", sorted(CASES))
def test_the_message_says_what_where_and_what_to_do(tmp_path, label):
    trigger, kind, names = CASES[label]
    with pytest.raises(kind) as e:
        trigger(tmp_path)
    message = str(e.value)
    missing = [n for n in names if n not in message]
    assert not missing, f"{label}: the message does not name {missing}: {message}"
    assert ADVICE.search(message), f"{label}: the message does not say what to do: {message}"
