import numpy as np
import pytest

from tests.oracle import rand
from tests.passes.helpers import assert_same_numerics, ops
from workbench.ir import Network
from workbench.passes.fold_batchnorm import fold_batchnorm

C = 4


def _bn(net, x, name="bn", **attrs):
    rng = np.random.default_rng(1)
    params = [rng.uniform(0.5, 2, C), rng.uniform(-1, 1, C), rng.uniform(-1, 1, C), rng.uniform(0.1, 2, C)]
    names = [net.add_constant(p.astype("f4"), f"{name}_{k}") for p, k in zip(params, ("g", "b", "m", "v"))]
    return net.add_layer("BatchNormalization", [x, *names], {"epsilon": 1e-3, **attrs}, name)


def _conv_bn(bias=True, group=1, extra_reader=False):
    net = Network("conv_bn")
    x = net.add_input("x", "float32", (2, 4, 6, 6))
    conv = net.add_convolution(x, rand(C, 4 // group, 3, 3, seed=2), rand(C, seed=3) if bias else None,
                               padding=1, groups=group, name="conv")
    net.mark_output(_bn(net, conv.output).output)
    if extra_reader:
        net.mark_output(conv.output)
    return net


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("group", [1, 2])
def test_conv_bn_becomes_one_conv(bias, group):
    net = _conv_bn(bias, group)
    out, changed = fold_batchnorm(net)
    assert changed and ops(out) == ["Conv"]
    assert out.layers[0].fused == ["conv", "bn"] and out.outputs == net.outputs
    assert out.layers[0].output == net.outputs[0]
    assert ops(net) == ["Conv", "BatchNormalization"], "the input network must not change"
    assert_same_numerics(net, [fold_batchnorm])


def test_conv_output_read_elsewhere_is_not_folded():
    out, changed = fold_batchnorm(_conv_bn(extra_reader=True))
    assert not changed and ops(out) == ["Conv", "BatchNormalization"]


def test_training_mode_bn_is_not_folded():
    net = Network("t")
    x = net.add_input("x", "float32", (2, 4, 6, 6))
    conv = net.add_convolution(x, rand(C, 4, 3, 3, seed=2), padding=1, name="conv")
    layer = _bn(net, conv.output)
    layer.attrs["training_mode"] = 1
    net.mark_output(layer.output)
    assert fold_batchnorm(net)[1] is False


def test_non_constant_conv_weight_is_not_folded():
    net = Network("t")
    x = net.add_input("x", "float32", (2, 4, 6, 6))
    w = net.add_input("w", "float32", (C, 4, 3, 3))
    conv = net.add_layer("Conv", [x, w], {"pads": [1, 1, 1, 1]}, "conv")
    net.mark_output(_bn(net, conv.output).output)
    assert fold_batchnorm(net)[1] is False


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("with_c", [True, False])
def test_gemm_bn(trans_b, with_c):
    net = Network("gemm_bn")
    x = net.add_input("x", "float32", (3, 5))
    w = net.add_constant(rand(*((C, 5) if trans_b else (5, C)), seed=4), "w")
    inputs = [x, w] + ([net.add_constant(rand(C, seed=5), "c")] if with_c else [])
    gemm = net.add_layer("Gemm", inputs, {"transB": trans_b, "beta": 0.5, "alpha": 1.5}, "gemm")
    net.mark_output(_bn(net, gemm.output).output)
    out, changed = fold_batchnorm(net)
    assert changed and ops(out) == ["Gemm"] and out.layers[0].attrs["beta"] == 1.0
    assert_same_numerics(net, [fold_batchnorm])


def test_matmul_bn_becomes_gemm():
    net = Network("mm_bn")
    x = net.add_input("x", "float32", (3, 5))
    mm = net.add_matmul(x, rand(5, C, seed=6), name="mm")
    net.mark_output(_bn(net, mm.output).output)
    out, changed = fold_batchnorm(net)
    assert changed and ops(out) == ["Gemm"] and out.layers[0].fused == ["mm", "bn"]
    assert_same_numerics(net, [fold_batchnorm])


def test_matmul_bn_over_a_3d_tensor_is_not_folded():
    """BN's channel axis is 1 (the sequence), not the MatMul's feature axis: folding would be wrong."""
    net = Network("mm3_bn")
    x = net.add_input("x", "float32", (2, C, 5))
    mm = net.add_matmul(x, rand(5, 6, seed=6), name="mm")
    net.mark_output(_bn(net, mm.output).output)
    assert fold_batchnorm(net)[1] is False
