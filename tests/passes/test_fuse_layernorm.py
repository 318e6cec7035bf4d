import numpy as np
import pytest

from tests.oracle import rand
from tests.passes.helpers import assert_same_numerics, ops
from workbench.ir import Network
from workbench.passes.fuse_layernorm import fuse_layernorm

SHAPE = (2, 3, 8)


def _reduce_mean(net, x, axes, legacy):
    """ReduceMean over `axes`: as an attribute (opset < 18) or as an input (opset >= 18)."""
    if legacy:
        return net.add_layer("ReduceMean", [x], {"axes": list(axes)}).output
    return net.add_layer("ReduceMean", [x, net.add_constant(np.array(axes, np.int64), "axes")]).output


def _layernorm_net(axes=(-1,), legacy=False, square="pow", gamma=(8,), beta=(8,), eps=1e-5, extra_output=False):
    """torch's legacy LayerNorm export, written out."""
    net = Network("ln")
    x = net.add_activation(net.add_input("x", "float32", SHAPE), "Relu", name="pre").output
    d = net.add_layer("Sub", [x, _reduce_mean(net, x, axes, legacy)], name="sub").output
    if square == "pow":
        sq = net.add_elementwise(d, np.float32(2.0), "Pow").output
    else:
        sq = net.add_layer("Mul", [d, d]).output
    var = net.add_elementwise(_reduce_mean(net, sq, axes, legacy), np.float32(eps), "Add").output
    y = net.add_layer("Div", [d, net.add_layer("Sqrt", [var]).output], name="div").output
    if gamma is not None:
        y = net.add_layer("Mul", [net.add_constant(rand(*gamma, seed=1), "gamma"), y]).output
    if beta is not None:
        y = net.add_elementwise(y, rand(*beta, seed=2), "Add").output
    net.mark_output(y)
    if extra_output:
        net.mark_output(d)
    return net


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("square", ["pow", "mul"])
def test_decomposed_layernorm_becomes_layernormalization(legacy, square):
    net = _layernorm_net(legacy=legacy, square=square)
    out, changed = fuse_layernorm(net)
    assert changed and ops(out) == ["Relu", "LayerNormalization"]
    ln = out.layers[1]
    assert ln.inputs[0] == "pre_out" and ln.output == net.outputs[0] and len(ln.fused) == 9
    assert ln.attrs["axis"] == -1 and ln.attrs["epsilon"] == pytest.approx(1e-5, rel=1e-6)
    np.testing.assert_array_equal(out.weights[ln.inputs[1]], rand(8, seed=1))
    np.testing.assert_array_equal(out.weights[ln.inputs[2]], rand(8, seed=2))
    assert_same_numerics(net, [fuse_layernorm])


@pytest.mark.parametrize("gamma, beta", [(None, None), ((8,), None), (None, (1, 1, 8)), ((1,), (8,))])
def test_optional_or_broadcast_affine(gamma, beta):
    net = _layernorm_net(gamma=gamma, beta=beta)
    out, changed = fuse_layernorm(net)
    assert changed and ops(out) == ["Relu", "LayerNormalization"]
    ln = out.layers[1]
    assert out.weights[ln.inputs[1]].shape == (8,) and len(ln.inputs) == (3 if beta else 2)
    assert_same_numerics(net, [fuse_layernorm])


def test_two_trailing_axes_give_axis_minus_2():
    net = _layernorm_net(axes=(1, 2), gamma=(3, 8), beta=None)
    out, changed = fuse_layernorm(net)
    assert changed and out.layers[1].attrs["axis"] == -2 and out.weights[out.layers[1].inputs[1]].shape == (3, 8)
    assert_same_numerics(net, [fuse_layernorm])


@pytest.mark.parametrize("kw", [
    {"axes": (1,)},                       # not the trailing axes
    {"gamma": (3, 1)},                    # gamma varies along a non-normalized axis
    {"extra_output": True},               # x - mean is needed elsewhere
    {"eps": -1.0},                        # not an epsilon
])
def test_lookalikes_are_not_fused(kw):
    assert fuse_layernorm(_layernorm_net(**kw))[1] is False
