import numpy as np
import pytest

from tests.passes.helpers import ops, run
from tests.passes.test_fuse_attention import B, E, S, _attention_net, _feeds
from workbench.ir import Network
from workbench.passes.fuse_attention import fuse_attention
from workbench.passes.fuse_bias_activation import fuse_bias_activation
from workbench.passes.infer import infer
from workbench.passes.pack_qkv import pack_qkv

STEPS = [fuse_bias_activation, fuse_attention, pack_qkv]


def _packed(net):
    for step in STEPS:
        net, _ = step(net)
    infer(net)
    return net


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("scale_op", ["Div", None])
def test_projections_pack_into_one_product_with_the_same_outputs(mask, scale_op):
    net = _attention_net(scale_op, mask)
    packed = _packed(net)
    assert ops(packed) == ["MatMul", "FusedAttention"]  # no biases: a plain product
    product, attention = packed.layers
    assert attention.inputs[:3] == [product.output] * 3 and attention.attrs["packed"] == [E, E, E]
    assert packed.tensors[product.output].shape == (B, S, 3 * E) and packed.tensors[packed.outputs[0]].shape == (B, S, E)
    assert len(product.fused) == 3 and product.name == product.fused[0]
    feeds = _feeds(net)
    want, got = run(net, feeds, STEPS[:2]), run(net, feeds, STEPS)
    np.testing.assert_allclose(got[net.outputs[0]], want[net.outputs[0]], rtol=1e-5, atol=1e-5)


def _biased_net(bias_on=(0, 1, 2), width_v=E, activation=None, shared_reader=False):
    """Projections with biases on some of them and V possibly of another width (two heads of 6 or 4)."""
    rng = np.random.default_rng(2)
    net = Network("biased")
    x = net.add_input("x", "float32", (B, S, E))
    outs = []
    for i, width in enumerate((E, E, width_v)):
        y = net.add_layer("MatMul", [x, net.add_constant(rng.standard_normal((E, width)).astype(np.float32), "w")]).output
        if i in bias_on:
            y = net.add_layer("Add", [y, net.add_constant(rng.standard_normal(width).astype(np.float32), "b")]).output
        if activation and i == 1:
            y = net.add_layer(activation, [y]).output
        outs.append(y)
    att = net.add_layer("FusedAttention", outs, attrs={"num_heads": 2, "scale": 0.5, "scale_op": "Mul"},
                        domain="workbench")
    net.mark_output(att.output)
    if shared_reader:
        net.mark_output(outs[0])
    return net


@pytest.mark.parametrize("bias_on,width_v", [((0, 1, 2), E), ((1,), E), ((), 8), ((0, 2), 8)])
def test_biases_and_a_wider_v_pack_too(bias_on, width_v):
    net = _biased_net(bias_on, width_v)
    packed = _packed(net)
    assert ops(packed) == ["FusedMatMul" if bias_on else "MatMul", "FusedAttention"]
    product, attention = packed.layers
    assert attention.attrs["packed"] == [E, E, width_v] and (len(product.inputs) == 3) == bool(bias_on)
    rng = np.random.default_rng(3)
    feeds = {"x": rng.standard_normal((B, S, E)).astype(np.float32)}
    want, got = run(net, feeds, STEPS[:2]), run(net, feeds, STEPS)
    np.testing.assert_allclose(got[net.outputs[0]], want[net.outputs[0]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change", ["activation", "shared_reader"])
def test_projections_that_cannot_merge_are_left_alone(change):
    net = _biased_net(activation="Relu") if change == "activation" else _biased_net(shared_reader=True)
    packed = _packed(net)
    assert "packed" not in [k for layer in packed.layers for k, v in layer.attrs.items() if v is not None]
    assert ops(packed).count("FusedMatMul") == 3


def test_packed_widths_are_checked():
    from workbench.errors import ShapeError
    from workbench.ir.ops import Info, spec_for

    rule = spec_for("FusedAttention", "workbench").shape_rule

    qkv = Info("float32", (B, S, 3 * E))
    assert rule(qkv, qkv, qkv, num_heads=3, scale=None, scale_op="Mul", packed=[E, E, E]).shape == (B, S, E)
    for bad in ([E, E], [E, E, E + 3], [E, 0, 2 * E]):
        with pytest.raises(ShapeError, match="packed"):
            rule(qkv, qkv, qkv, num_heads=3, scale=None, scale_op="Mul", packed=bad)
