import numpy as np
import pytest

import workbench as wb
from workbench.ir import Layer, Network


def small_network():
    net = Network("t")
    x = net.add_input("x", "float32", ("batch", 4))
    y = net.add_elementwise(x, np.ones(4, np.float32), "Add", name="add").output
    z = net.add_activation(y, "Relu", name="relu").output
    net.mark_output(z)
    return net


def test_building_api_infers_shapes_and_validates():
    net = small_network().validate()
    assert net.tensors[net.outputs[0]].shape == ("batch", 4)
    assert net.producers()[net.outputs[0]].name == "relu"
    assert [l.name for l in net.consumers()["x"]] == ["add"]
    assert net.op_histogram() == {"Add": 1, "Relu": 1}
    assert net.parameter_count() == 4


def test_validate_names_dangling_edges_and_duplicates():
    net = small_network()
    net.layers.append(Layer("bad", "Relu", ["ghost"], ["out2"]))
    with pytest.raises(wb.ValidationError, match="ghost"):
        net.validate()
    net = small_network()
    net.layers.append(Layer("relu", "Relu", [net.outputs[0]], ["o3"]))
    with pytest.raises(wb.ValidationError, match="unique"):
        net.validate()


def test_copy_is_independent():
    net = small_network()
    other = net.copy()
    other.layers[0].inputs[0] = "changed"
    other.layers.pop()
    assert net.layers[0].inputs[0] == "x" and len(net.layers) == 2


def test_hand_built_network_runs():
    net = small_network()
    engine = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=4))
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    out = engine.create_execution_context().execute({"x": x})[net.outputs[0]]
    np.testing.assert_allclose(out, np.maximum(x + 1, 0), rtol=1e-6)
