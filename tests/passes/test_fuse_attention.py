import numpy as np
import pytest

from tests.passes.helpers import ops, run
from workbench.ir import Network
from workbench.passes.fuse_attention import fuse_attention

B, S, H, D = 2, 6, 3, 4
E = H * D


def _heads(net, x, perm, split_k=False):
    r = net.add_layer("Reshape", [x, net.add_constant(np.array([B, S, H, D], np.int64), "shape")]).output
    if split_k:  # [0,2,1,3] then [0,1,3,2]: composes to [0,2,3,1]
        t = net.add_layer("Transpose", [r], attrs={"perm": [0, 2, 1, 3]}).output
        return net.add_layer("Transpose", [t], attrs={"perm": [0, 1, 3, 2]}).output
    return net.add_layer("Transpose", [r], attrs={"perm": list(perm)}).output


def _attention_net(scale_op="Div", mask=True, mask_first=False, split_k=False, merge=True, axis=-1):
    """BERT's self-attention: three projections of x, heads split, scaled, masked, softmax, merged."""
    rng = np.random.default_rng(0)
    net = Network("attention")
    x = net.add_input("x", "float32", (B, S, E))
    m = net.add_input("mask", "float32", (B, 1, 1, S)) if mask else None
    proj = [net.add_layer("MatMul", [x, net.add_constant(rng.standard_normal((E, E)).astype(np.float32), "w")]).output
            for _ in range(3)]
    q, k, v = _heads(net, proj[0], (0, 2, 1, 3)), _heads(net, proj[1], (0, 2, 3, 1), split_k), \
        _heads(net, proj[2], (0, 2, 1, 3))
    s = net.add_layer("MatMul", [q, k]).output
    if scale_op:
        s = net.add_layer(scale_op, [s, net.add_constant(np.float32(2.0 if scale_op == "Div" else 0.5), "c")]).output
    if mask:
        s = net.add_layer("Add", [m, s] if mask_first else [s, m]).output
    p = net.add_layer("Softmax", [s], attrs={"axis": axis}).output
    o = net.add_layer("MatMul", [p, v]).output
    if merge:
        t = net.add_layer("Transpose", [o], attrs={"perm": [0, 2, 1, 3]}).output
        o = net.add_layer("Reshape", [t, net.add_constant(np.array([B, S, E], np.int64), "merged")]).output
    net.mark_output(o)
    return net


def _feeds(net):
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((B, S, E)).astype(np.float32)}
    if "mask" in net.inputs:
        feeds["mask"] = np.where(rng.random((B, 1, 1, S)) < 0.3, -10000.0, 0.0).astype(np.float32)
    return feeds


@pytest.mark.parametrize("scale_op", ["Div", "Mul", None])
@pytest.mark.parametrize("mask,mask_first", [(True, False), (True, True), (False, False)])
@pytest.mark.parametrize("split_k", [False, True])
def test_attention_fuses_into_one_layer_with_identical_results(scale_op, mask, mask_first, split_k):
    net = _attention_net(scale_op, mask, mask_first, split_k)
    fused, changed = fuse_attention(net)
    assert changed
    assert ops(fused) == ["MatMul"] * 3 + ["FusedAttention"]
    layer = fused.layers[-1]
    assert layer.domain == "workbench" and layer.attrs["num_heads"] == H
    assert layer.attrs["scale"] == ({"Div": 2.0, "Mul": 0.5}.get(scale_op))
    assert len(layer.inputs) == (4 if mask else 3)
    feeds = _feeds(net)
    want, got = run(net, feeds), run(net, feeds, [fuse_attention])
    np.testing.assert_array_equal(got[net.outputs[0]], want[net.outputs[0]])  # composed from the same kernels


def test_shape_rule_gives_the_merged_output():
    fused, _ = fuse_attention(_attention_net())
    from workbench.passes.infer import infer

    infer(fused)
    assert fused.tensors[fused.outputs[0]].shape == (B, S, E)


@pytest.mark.parametrize("change", ["no_merge", "softmax_axis", "shared_scores"])
def test_other_patterns_are_left_alone(change):
    if change == "no_merge":
        net = _attention_net(merge=False)
    elif change == "softmax_axis":
        net = _attention_net(axis=2)
    else:  # the scores are also a graph output: they must survive
        net = _attention_net()
        net.mark_output(next(layer for layer in net.layers if layer.op == "Softmax").inputs[0])
    _, changed = fuse_attention(net)
    assert not changed
