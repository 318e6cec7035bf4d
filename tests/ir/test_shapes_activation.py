"""Shape rules of activations: output like the input, including unknown ranks and symbolic dims."""
import pytest

from tests.ir.shape_rules import infer
from workbench.errors import ShapeError, ValidationError
from workbench.ir.opdefs.activation import ACTIVATIONS
from workbench.ir.ops import Info

X = Info("float16", ("batch", 64, "h", "w"))


@pytest.mark.parametrize("op", sorted(ACTIVATIONS))
def test_activation_keeps_shape_and_dtype(op):
    assert infer(op, X) == X
    assert infer(op, Info("bfloat16", None)) == Info("bfloat16", None)


def test_attribute_defaults_and_unknown_attributes():
    assert infer("LeakyRelu", X, alpha=0.2) == X
    with pytest.raises(ValidationError, match="no attribute"):
        infer("Relu", X, alpha=0.2)


def test_prelu_slope_broadcasts_to_input():
    assert infer("PRelu", X, Info("float16", (64, 1, 1))) == X
    with pytest.raises(ShapeError):
        infer("PRelu", Info("float16", (2, 3)), Info("float16", (4,)))
    with pytest.raises(ShapeError):  # slope may not add dims to the input
        infer("PRelu", Info("float16", (3,)), Info("float16", (2, 3)))


def test_clip_with_bounds_as_inputs_or_attributes():
    bound = Info("float16", ())
    assert infer("Clip", X, bound, bound) == X
    assert infer("Clip", X, None, bound) == X
    assert infer("Clip", X, min=-1.0, max=1.0) == X
    with pytest.raises(ShapeError, match="one dtype"):
        infer("Clip", X, Info("float32", ()))


def test_swiglu_needs_equal_shapes_and_dtypes():
    a = Info("float32", ("N", 8))
    assert infer("SwiGLU", a, Info("float32", ("M", 8))) == a
    for b in (Info("float32", ("N", 1)), Info("float16", ("N", 8)), Info("float32", (8,))):
        with pytest.raises(ShapeError):
            infer("SwiGLU", a, b)
