"""Shape rules of Softmax, LogSoftmax and Hardmax, whose default axis depends on the opset."""
import pytest

from tests.ir.shape_rules import infer
from workbench.errors import ShapeError
from workbench.ir.opdefs.softmax import softmax_axis
from workbench.ir.ops import Info

X = Info("float32", ("batch", "seq", 768))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
def test_output_like_input(op):
    assert infer(op, X) == X
    assert infer(op, X, axis=0, _opset=11) == X
    with pytest.raises(ShapeError, match="axis"):
        infer(op, X, axis=3)


def test_default_axis_depends_on_opset():
    assert softmax_axis(None, 13, 3) == 2
    assert softmax_axis(None, 11, 3) == 1
    assert softmax_axis(-2, 11, 3) == 1
