import math

import numpy as np
import pytest

from tests.passes.helpers import assert_same_numerics, ops
from workbench.ir import Network
from workbench.passes.fuse_gelu import fuse_gelu

SQRT2 = np.float32(math.sqrt(2.0))


def _mul(net, a, b, name=None):
    return net.add_layer("Mul", [a, b], name=name).output


def _const(net, value):
    return net.add_constant(np.float32(value), "c")


def _erf_part(net, x, divide=True, sqrt2=SQRT2):
    """1 + Erf(x / sqrt2), or 1 + Erf(x * (1/sqrt2))."""
    if divide:
        arg = net.add_layer("Div", [x, _const(net, sqrt2)]).output
    else:
        arg = _mul(net, _const(net, 1.0 / sqrt2), x)
    erf = net.add_layer("Erf", [arg]).output
    return net.add_layer("Add", [_const(net, 1.0), erf]).output


def _tanh_part(net, x, cube_by_pow=True):
    """1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3))."""
    if cube_by_pow:
        cube = net.add_layer("Pow", [x, _const(net, 3.0)]).output
    else:
        cube = _mul(net, x, _mul(net, x, x))
    inner = net.add_layer("Add", [x, _mul(net, cube, _const(net, 0.044715))]).output
    t = net.add_layer("Tanh", [_mul(net, _const(net, math.sqrt(2 / math.pi)), inner)]).output
    return net.add_layer("Add", [t, _const(net, 1.0)]).output


# The three factors x, 0.5 and (1 + ...) in the groupings exporters write.
ORDERINGS = {
    "half_x_first": lambda net, x, b, half: _mul(net, _mul(net, x, _const(net, half)), b),
    "x_times_b_then_half": lambda net, x, b, half: _mul(net, _mul(net, x, b), _const(net, half)),
    "b_times_half_then_x": lambda net, x, b, half: _mul(net, x, _mul(net, b, _const(net, half))),
}


def _gelu_net(ordering="half_x_first", inner="erf", half=0.5, **kw):
    net = Network("gelu")
    x = net.add_input("x", "float32", (2, 3, 8))
    y = net.add_activation(x, "Relu", name="pre").output  # x is an activation, not a graph input
    b = _erf_part(net, y, **kw) if inner == "erf" else _tanh_part(net, y, **kw)
    net.mark_output(ORDERINGS[ordering](net, y, b, half))
    return net


@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
@pytest.mark.parametrize("divide", [True, False])
def test_erf_gelu_becomes_gelu(ordering, divide):
    net = _gelu_net(ordering, divide=divide)
    out, changed = fuse_gelu(net)
    assert changed and ops(out) == ["Relu", "Gelu"]
    gelu = out.layers[1]
    assert gelu.inputs == ["pre_out"] and gelu.output == net.outputs[0] and gelu.attrs == {}
    assert len(gelu.fused) == 5  # scale, Erf, +1, and the two products
    assert_same_numerics(net, [fuse_gelu])


@pytest.mark.parametrize("ordering", sorted(ORDERINGS))
@pytest.mark.parametrize("cube_by_pow", [True, False])
def test_tanh_gelu_becomes_gelu_tanh(ordering, cube_by_pow):
    net = _gelu_net(ordering, "tanh", cube_by_pow=cube_by_pow)
    out, changed = fuse_gelu(net)
    assert changed and ops(out) == ["Relu", "Gelu"] and out.layers[1].attrs == {"approximate": "tanh"}
    assert_same_numerics(net, [fuse_gelu], rtol=1e-5, atol=1e-6)


def test_a_short_sqrt2_still_fuses():
    assert fuse_gelu(_gelu_net(sqrt2=1.41421))[1] is True


@pytest.mark.parametrize("kw", [{"half": 0.6}, {"sqrt2": 1.5}])
def test_other_constants_are_not_gelu(kw):
    net = _gelu_net(**kw)
    assert fuse_gelu(net)[1] is False


def test_intermediate_read_elsewhere_is_not_fused():
    net = _gelu_net()
    erf = next(layer for layer in net.layers if layer.op == "Erf")
    net.mark_output(erf.output)
    assert fuse_gelu(net)[1] is False


def test_x_times_x_plus_one_is_not_gelu():
    """The factor must be x itself: y * 0.5 * (1 + erf(x/sqrt2)) with y != x is left alone."""
    net = Network("t")
    x = net.add_input("x", "float32", (4,))
    other = net.add_activation(x, "Relu").output
    b = _erf_part(net, x)
    net.mark_output(ORDERINGS["half_x_first"](net, other, b, 0.5))
    assert fuse_gelu(net)[1] is False
