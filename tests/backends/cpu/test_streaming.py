"""TensorScatter, LinearAttention and CausalConvWithState kernels vs onnx.reference."""
import numpy as np
import pytest

from tests.oracle import check, rand


@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("shapes,axis", [(((2, 3, 6, 4), (2, 3, 2, 4)), -2), (((3, 5, 2), (3, 3, 2)), 1),
                                         (((2, 2, 4, 3), (2, 2, 4, 2)), -1)])
@pytest.mark.parametrize("indices", [True, False])
def test_tensor_scatter(mode, shapes, axis, indices):
    cache, update = rand(*shapes[0]), rand(*shapes[1])
    length, steps = shapes[0][axis], shapes[1][axis]
    top = length if mode == "circular" else length - steps + 1
    write = np.arange(shapes[0][0], dtype=np.int64) * 3 % top if indices else None
    check("TensorScatter", [cache, update, write], {"mode": mode, "axis": axis}, opset=24)


RULES = {"linear": (False, False), "gated": (True, False), "delta": (False, True), "gated_delta": (True, True)}


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (2, 1)])
@pytest.mark.parametrize("past", [False, True])
@pytest.mark.parametrize("per_head", [False, True])
def test_linear_attention(rule, heads, past, per_head):
    hq, hkv = heads
    b, t, dk, dv = 2, 5, 4, 3
    gated, delta = RULES[rule]
    decay = rand(b, t, hkv if per_head else hkv * dk, low=-0.5, high=0) if gated else None
    beta = rand(b, t, hkv if per_head else 1, low=0, high=1) if delta else None
    ins = [rand(b, t, hq * dk), rand(b, t, hkv * dk), rand(b, t, hkv * dv),
           rand(b, hkv, dk, dv) if past else None, decay, beta]
    attrs = {"q_num_heads": hq, "kv_num_heads": hkv, "update_rule": rule}
    check("LinearAttention", ins, attrs, n_out=2, opset=27, rtol=1e-5, atol=1e-5)


def test_linear_attention_explicit_scale_and_float16():
    ins = [rand(1, 3, 8, dtype="float16"), rand(1, 3, 8, dtype="float16"), rand(1, 3, 8, dtype="float16"), None,
           rand(1, 3, 2, dtype="float16", low=-1, high=0), rand(1, 3, 2, dtype="float16", low=0, high=1)]
    check("LinearAttention", ins, {"q_num_heads": 2, "kv_num_heads": 2, "scale": 0.3}, n_out=2, opset=27,
          rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("activation", ["none", "silu", "swish"])
@pytest.mark.parametrize("k", [1, 3, 6])
@pytest.mark.parametrize("bias,past", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("length", [1, 4])
def test_causal_conv_with_state(activation, k, bias, past, length):
    ins = [rand(2, 3, length), rand(3, 1, k), rand(3) if bias else None, rand(2, 3, k - 1) if past else None]
    check("CausalConvWithState", ins, {"activation": activation}, n_out=2, opset=27, rtol=1e-5, atol=1e-6)
