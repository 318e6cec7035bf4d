import numpy as np
import pytest

from tests.passes.helpers import ops, run
from workbench.ir import Network
from workbench.passes.fuse_residual_layernorm import fuse_residual_layernorm


def _net(bias=True, residual_shape=(2, 5, 8), extra_reader=False, stats=False):
    rng = np.random.default_rng(0)
    net = Network("post-ln")
    x = net.add_input("x", "float32", (2, 5, 8))
    r = net.add_input("r", "float32", residual_shape)
    h = net.add_activation(x, "Relu").output  # an activation, like a projection's output
    s = net.add_layer("Add", [h, r]).output
    params = [net.add_constant(rng.standard_normal(8).astype(np.float32), "gamma")]
    if bias:
        params.append(net.add_constant(rng.standard_normal(8).astype(np.float32), "beta"))
    ln = net.add_layer("LayerNormalization", [s, *params], attrs={"epsilon": 1e-6}, num_outputs=3 if stats else 1)
    net.mark_output(ln.outputs[0])
    if stats:
        net.mark_output(ln.outputs[1])
    if extra_reader:
        net.mark_output(net.add_activation(s, "Tanh").output)
    return net


@pytest.mark.parametrize("bias", [True, False])
def test_residual_add_folds_into_the_norm_with_identical_results(bias):
    net = _net(bias)
    fused, changed = fuse_residual_layernorm(net)
    assert changed and ops(fused) == ["Relu", "FusedLayerNorm"]
    layer = fused.layers[-1]
    assert layer.domain == "workbench" and layer.attrs["epsilon"] == 1e-6 and len(layer.inputs) == 4
    rng = np.random.default_rng(1)
    feeds = {n: rng.standard_normal((2, 5, 8)).astype(np.float32) for n in ("x", "r")}
    want, got = run(net, feeds), run(net, feeds, [fuse_residual_layernorm])
    name = net.outputs[0]
    np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("kw", [{"residual_shape": (8,)}, {"extra_reader": True}, {"stats": True}])
def test_broadcasts_shared_sums_and_used_statistics_are_left_alone(kw):
    _, changed = fuse_residual_layernorm(_net(**kw))
    assert not changed
