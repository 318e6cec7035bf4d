import numpy as np
import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir.ops import Info


def test_attention_4d_gqa_with_cache():
    q, k, v = rand(2, 8, 3, 16), rand(2, 2, 3, 16), rand(2, 2, 3, 12)
    pk, pv = rand(2, 2, 5, 16), rand(2, 2, 5, 12)
    out = agrees("Attention", [q, k, v, None, pk, pv],
                 [("B", 8, "S", 16), ("B", 2, "S", 16), ("B", 2, "S", 12), None,
                  ("B", 2, "P", 16), ("B", 2, "P", 12)], {"B": 2, "S": 3, "P": 5})
    assert out[0].shape == ("B", 8, "S", 12)
    assert out[3].shape == ("B", 8, "S", "P+S")


def test_attention_3d_uses_head_attributes():
    q, k, v = rand(2, 3, 24), rand(2, 5, 12), rand(2, 5, 6)
    out = agrees("Attention", [q, k, v], [("B", "S", 24), ("B", "T", 12), ("B", "T", 6)],
                 {"B": 2, "S": 3, "T": 5}, q_num_heads=6, kv_num_heads=3)
    assert out[0].shape == ("B", "S", 12)  # 6 query heads x value head size 2
    assert out[1].shape == ("B", 3, "T", 4)


def test_attention_symbolic_hidden_size():
    out = infer("Attention", Info("float32", ("B", "S", "D")), Info("float32", ("B", "T", "D")),
                Info("float32", ("B", "T", "D")), q_num_heads=4, kv_num_heads=4)
    assert out[0].shape == ("B", "S", "4*(D//4)")


def test_attention_errors():
    x3 = Info("float32", (1, 3, 8))
    with pytest.raises(ShapeError, match="q_num_heads"):
        infer("Attention", x3, x3, x3)
    with pytest.raises(ShapeError, match="multiple"):
        infer("Attention", Info("float32", (1, 3, 2, 4)), Info("float32", (1, 2, 2, 4)),
              Info("float32", (1, 2, 2, 4)))


@pytest.mark.parametrize("shape, sym, attrs", [
    ((2, 4, 3, 8), ("B", 4, "S", 8), {}),
    ((2, 3, 32), ("B", "S", 32), dict(num_heads=4)),
])
def test_rotary_keeps_shape(shape, sym, attrs):
    pos = np.array([[0, 1, 2], [1, 2, 3]], dtype=np.int64)
    agrees("RotaryEmbedding", [rand(*shape), rand(4, 4), rand(4, 4), pos], [sym, None, None, None],
           {"B": 2, "S": 3}, **attrs)


def test_rotary_3d_needs_num_heads():
    with pytest.raises(ShapeError, match="num_heads"):
        infer("RotaryEmbedding", Info("float32", (1, 3, 8)), Info("float32", (3, 4)), Info("float32", (3, 4)))
