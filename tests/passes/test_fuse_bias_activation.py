import numpy as np
import pytest

from tests.oracle import rand
from tests.passes.helpers import assert_same_numerics, ops
from workbench.ir import Network
from workbench.passes.fuse_bias_activation import fuse_bias_activation

C = 4
ACTIVATIONS = [  # (op, attrs, expected kind, alpha, beta)
    ("Relu", {}, "Relu", None, None),
    ("LeakyRelu", {"alpha": 0.2}, "LeakyRelu", 0.2, None),
    ("Elu", {"alpha": 0.7}, "Elu", 0.7, None),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, "HardSigmoid", 0.3, 0.4),
    ("Sigmoid", {}, "Sigmoid", None, None),
    ("Tanh", {}, "Tanh", None, None),
    ("HardSwish", {}, "HardSwish", None, None),
    ("Gelu", {}, "Gelu", None, None),
    ("Gelu", {"approximate": "tanh"}, "GeluTanh", None, None),
]


def _conv(net, x, bias=False, name="conv"):
    return net.add_convolution(x, rand(C, 3, 3, 3, seed=2), rand(C, seed=3) if bias else None, padding=1,
                               name=name)


def _net(x_shape=(2, 3, 5, 5)):
    net = Network("t")
    return net, net.add_input("x", "float32", x_shape)


@pytest.mark.parametrize("op, attrs, kind, alpha, beta", ACTIVATIONS)
def test_conv_bias_activation_becomes_one_fused_conv(op, attrs, kind, alpha, beta):
    net, x = _net()
    conv = _conv(net, x)
    add = net.add_elementwise(conv.output, rand(C, 1, 1, seed=4), "Add", name="add")
    net.mark_output(net.add_activation(add.output, op, name="act", **attrs).output)
    out, changed = fuse_bias_activation(net)
    assert changed and ops(out) == ["FusedConv"]
    fused = out.layers[0]
    assert fused.domain == "workbench" and fused.fused == ["conv", "add", "act"]
    assert (fused.attrs["activation"], fused.attrs.get("activation_alpha"), fused.attrs.get("activation_beta")) == \
        (kind, alpha, beta)
    assert len(fused.inputs) == 3 and fused.inputs[2] in out.weights and fused.output == net.outputs[0]
    assert_same_numerics(net, [fuse_bias_activation])


def test_bias_is_added_to_an_existing_conv_bias():
    net, x = _net()
    conv = _conv(net, x, bias=True)
    net.mark_output(net.add_elementwise(conv.output, rand(1, C, 1, 1, seed=4), "Add").output)
    out, changed = fuse_bias_activation(net)
    assert changed and ops(out) == ["Conv"]
    np.testing.assert_allclose(out.weights[out.layers[0].inputs[2]],
                               net.weights[conv.inputs[2]] + rand(1, C, 1, 1, seed=4).reshape(-1), rtol=1e-6)
    assert_same_numerics(net, [fuse_bias_activation])


@pytest.mark.parametrize("shape", [(5,), (C, 5, 5), (2, C, 1, 1)])
def test_bias_not_along_channels_is_not_folded(shape):
    net, x = _net()
    conv = _conv(net, x)
    net.mark_output(net.add_elementwise(conv.output, rand(*shape, seed=4), "Add").output)
    assert ops(fuse_bias_activation(net)[0]) == ["Conv", "Add"]


def test_conv_residual_relu_becomes_fused_conv_with_residual():
    net, x = _net()
    skip = net.add_activation(x, "Sigmoid", name="skip")  # an activation shaped like the conv output
    conv = net.add_convolution(x, rand(3, 3, 3, 3, seed=2), padding=1, name="conv")
    add = net.add_layer("Add", [skip.output, conv.output], name="add")
    net.mark_output(net.add_activation(add.output, "Relu", name="relu").output)
    out, changed = fuse_bias_activation(net)
    assert changed and ops(out) == ["Sigmoid", "FusedConv"]
    fused = out.layers[1]
    assert fused.inputs == [x, conv.inputs[1], "", skip.output] and fused.attrs["activation"] == "Relu"
    assert fused.fused == ["conv", "add", "relu"]
    assert_same_numerics(net, [fuse_bias_activation])


def test_residual_that_broadcasts_is_not_fused():
    net, x = _net()
    y = net.add_input("y", "float32", (2, C, 1, 1))
    conv = _conv(net, x)
    net.mark_output(net.add_layer("Add", [conv.output, y]).output)
    assert ops(fuse_bias_activation(net)[0]) == ["Conv", "Add"]


def test_conv_output_read_twice_is_not_fused():
    net, x = _net()
    conv = _conv(net, x)
    net.mark_output(net.add_activation(conv.output, "Relu").output)
    net.mark_output(net.add_activation(conv.output, "Sigmoid").output)
    assert fuse_bias_activation(net)[1] is False


@pytest.mark.parametrize("bounds, expected", [((0.0, 6.0), (0.0, 6.0)), ((None, 6.0), (None, 6.0))])
def test_gemm_bias_relu6(bounds, expected):
    net = Network("t")
    x = net.add_input("x", "float32", (3, 5))
    gemm = net.add_fully_connected(x, rand(C, 5, seed=1) * 4, name="fc")
    add = net.add_elementwise(gemm.output, rand(1, C, seed=2), "Add")
    lo, hi = (net.add_constant(np.float32(b), "b") if b is not None else "" for b in bounds)
    net.mark_output(net.add_layer("Clip", [add.output, lo, hi], name="clip").output)
    out, changed = fuse_bias_activation(net)
    assert changed and ops(out) == ["FusedGemm"]
    attrs = out.layers[0].attrs
    assert (attrs["activation"], attrs.get("activation_alpha"), attrs.get("activation_beta")) == ("Clip", *expected)
    assert attrs["transB"] == 1 and len(out.layers[0].inputs) == 3
    assert_same_numerics(net, [fuse_bias_activation])


def test_clip_with_run_time_bounds_is_not_fused():
    net = Network("t")
    x = net.add_input("x", "float32", (3, 5))
    hi = net.add_input("hi", "float32", ())
    gemm = net.add_fully_connected(x, rand(C, 5, seed=1), name="fc")
    net.mark_output(net.add_layer("Clip", [gemm.output, "", hi]).output)
    assert ops(fuse_bias_activation(net)[0]) == ["Gemm", "Clip"]


def test_matmul_bias_gelu_becomes_fused_matmul():
    net = Network("t")
    x = net.add_input("x", "float32", (2, 3, 5))
    mm = net.add_matmul(x, rand(5, C, seed=1), name="mm")
    add = net.add_layer("Add", [net.add_constant(rand(C, seed=2), "bias"), mm.output], name="add")
    net.mark_output(net.add_activation(add.output, "Gelu", name="gelu").output)
    out, changed = fuse_bias_activation(net)
    assert changed and ops(out) == ["FusedMatMul"]
    assert out.layers[0].attrs["activation"] == "Gelu" and out.layers[0].fused == ["mm", "add", "gelu"]
    assert_same_numerics(net, [fuse_bias_activation])


def test_matmul_bias_on_a_non_last_axis_is_not_folded():
    net = Network("t")
    x = net.add_input("x", "float32", (2, 3, 5))
    mm = net.add_matmul(x, rand(5, C, seed=1), name="mm")
    net.mark_output(net.add_elementwise(mm.output, rand(3, 1, seed=2), "Add").output)
    assert ops(fuse_bias_activation(net)[0]) == ["MatMul", "Add"]


def test_input_network_is_not_modified():
    net, x = _net()
    conv = _conv(net, x)
    net.mark_output(net.add_activation(conv.output, "Relu").output)
    before = [(layer.op, list(layer.inputs), dict(layer.attrs)) for layer in net.layers]
    fuse_bias_activation(net)
    assert [(layer.op, list(layer.inputs), dict(layer.attrs)) for layer in net.layers] == before
