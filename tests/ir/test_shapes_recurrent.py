"""Shape rules of RNN, GRU and LSTM with symbolic sequence and batch dims."""
import pytest

from tests.backends.cpu.test_recurrent import layer_inputs
from tests.ir.shapecheck import agrees, infer
from workbench.errors import ShapeError
from workbench.ir.ops import Info


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_recurrent_outputs_follow_layout_and_directions(op, layout, direction):
    dirs = 2 if direction == "bidirectional" else 1
    ins = layer_inputs(op, dirs=dirs, layout=layout)
    x_sym = ("S", "B", 5) if layout == 0 else ("B", "S", 5)
    state = (dirs, "B", 6) if layout == 0 else ("B", dirs, 6)
    symbolic = [x_sym, None, None, None, None, state] + ([state, None] if op == "LSTM" else [])
    out = agrees(op, ins, symbolic, {"S": 4, "B": 3}, hidden_size=6, direction=direction, layout=layout)
    assert out[0].shape == (("S", dirs, "B", 6) if layout == 0 else ("B", "S", dirs, 6))
    assert len(out) == (3 if op == "LSTM" else 2)


def test_hidden_size_comes_from_r_when_the_attribute_is_missing():
    x, w, r = Info("float16", ("S", "B", 4)), Info("float16", (1, 8, 4)), Info("float16", (1, 8, 2))
    assert infer("LSTM", x, w, r)[1] == Info("float16", (1, "B", 2))


@pytest.mark.parametrize("attrs", [{"direction": "sideways"}, {"layout": 2}, {"direction": "bidirectional"}])
def test_bad_direction_layout_or_weight_count(attrs):
    x, w, r = Info("float32", ("S", "B", 4)), Info("float32", (1, 3, 4)), Info("float32", (1, 3, 3))
    with pytest.raises(ShapeError):
        infer("GRU", x, w, r, **attrs)
