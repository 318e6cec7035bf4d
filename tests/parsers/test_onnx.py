import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import workbench as wb
from tests.models.tiny import add_relu


def test_loads_path_bytes_and_proto(tmp_path):
    model = add_relu()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    for source in (str(path), path, model.SerializeToString(), model):
        net = wb.load_onnx(source)
        assert net.inputs == ["x"] and net.outputs == ["y"]
        assert net.tensors["y"].shape == ("batch", 4)
        assert [l.op for l in net.layers] == ["Add", "Relu"]


def test_missing_file_is_a_parse_error(tmp_path):
    with pytest.raises(wb.ParseError, match="no such file"):
        wb.load_onnx(tmp_path / "nope.onnx")


@pytest.mark.parametrize("data", [b"", b"\x00\x01garbage" * 10, b"not onnx at all"])
def test_malformed_bytes_are_a_parse_error(data):
    with pytest.raises(wb.WorkbenchError):
        wb.load_onnx(data)


def test_unsupported_op_names_node_op_and_opset():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    g = helper.make_graph([helper.make_node("FancyOp", ["x"], ["y"], name="fancy1", domain="my.domain")],
                          "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.domain", 3)])
    with pytest.raises(wb.ParseError) as e:
        wb.load_onnx(m)
    assert "fancy1" in str(e.value) and "FancyOp" in str(e.value) and "3" in str(e.value)


def test_dangling_input_is_reported():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    g = helper.make_graph([helper.make_node("Relu", ["ghost"], ["y"], name="r")], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(wb.ParseError, match="ghost"):
        wb.load_onnx(m)


def test_newer_opset_than_onnx_is_refused():
    m = add_relu()
    m.opset_import[0].version = onnx.defs.onnx_opset_version() + 5
    with pytest.raises(wb.ParseError, match="newer"):
        wb.load_onnx(m)


def test_external_data_outside_model_folder_is_refused(tmp_path):
    m = add_relu()
    w = m.graph.initializer[0]
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(wb.ParseError, match="outside"):
        wb.load_onnx(path)


def test_constant_nodes_become_weights():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    nodes = [helper.make_node("Constant", [], ["c"], value_floats=[1.0, -2.0, 3.0]),
             helper.make_node("Add", ["x", "c"], ["y"])]
    net = wb.load_onnx(helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                                         opset_imports=[helper.make_opsetid("", 17)]))
    np.testing.assert_array_equal(net.weights["c"], np.array([1, -2, 3], np.float32))
    assert [l.op for l in net.layers] == ["Add"]


def test_absurd_declared_input_is_refused_quickly():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1 << 20, 1 << 20, 1 << 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(wb.ResourceLimitError, match="'x'"):
        wb.load_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
