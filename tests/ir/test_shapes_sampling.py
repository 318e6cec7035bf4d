"""Shape rules of the random ops: symbolic shapes kept, dtype from the attribute, nondeterministic."""
import pytest

from tests.ir.shapecheck import infer
from workbench.errors import ShapeError
from workbench.ir.ops import Info, spec_for

RANDOM = ["Bernoulli", "RandomUniformLike", "RandomNormalLike", "RandomUniform", "RandomNormal"]


@pytest.mark.parametrize("op", RANDOM)
def test_random_ops_are_registered_nondeterministic(op):
    assert not spec_for(op).deterministic


@pytest.mark.parametrize("op", ["Bernoulli", "RandomUniformLike", "RandomNormalLike"])
def test_like_ops_keep_symbolic_shape(op):
    x = Info("float32", ("N", 3))
    assert infer(op, x) == [x]
    assert infer(op, x, dtype=7) == [Info("int64", ("N", 3))]


def test_shape_attribute_is_required():
    assert infer("RandomNormal", shape=[2, 3]) == [Info("float32", (2, 3))]
    with pytest.raises(ShapeError, match="shape"):
        infer("RandomUniform")
