"""Shape rules of TensorScatter, LinearAttention, CausalConvWithState and FlexAttention (symbolic dims)."""
import pytest

from tests.ir.shapecheck import infer
from workbench.errors import ShapeError
from workbench.ir.ops import Info, attributes, spec_for


def test_tensor_scatter_keeps_the_cache():
    cache = Info("float16", ("B", 4, "L", 8))
    assert infer("TensorScatter", cache, Info("float16", ("B", 4, "T", 8))) == [cache]
    with pytest.raises(ShapeError):
        infer("TensorScatter", cache, Info("float16", ("B", 4, "T", 8)), mode="wrap")


def test_linear_attention_shapes():
    q, kv = Info("float32", ("B", "T", 64)), Info("float32", ("B", "T", 32))
    out, state = infer("LinearAttention", q, kv, Info("float32", ("B", "T", 24)), q_num_heads=8, kv_num_heads=4)
    assert out == Info("float32", ("B", "T", 48)) and state == Info("float32", ("B", 4, 8, 6))
    past = Info("float64", ("B", 4, 8, 6))
    assert infer("LinearAttention", q, kv, kv, past, q_num_heads=8, kv_num_heads=4)[1].dtype == "float64"
    for bad in ({"q_num_heads": 6, "kv_num_heads": 4}, {"q_num_heads": 8, "kv_num_heads": 4, "update_rule": "x"}):
        with pytest.raises(ShapeError):
            infer("LinearAttention", q, kv, kv, **bad)


def test_causal_conv_state_keeps_k_minus_one_steps():
    out, state = infer("CausalConvWithState", Info("float32", ("B", 16, "L")), Info("float32", (16, 1, 4)))
    assert out.shape == ("B", 16, "L") and state.shape == ("B", 16, 3)


def test_flex_attention_takes_values_head_size():
    spec = spec_for("FlexAttention", "ai.onnx.preview")
    q, k, v = Info("float32", ("B", 8, "L", 16)), Info("float32", ("B", 2, "S", 16)), Info("float32", ("B", 2, "S", 4))
    assert spec.shape_rule(q, k, v, **attributes(spec, {}, "test")) == Info("float32", ("B", 8, "L", 4))
