import pytest

from tests.oracle import rand
from tests.passes.helpers import assert_same_numerics, ops, requires_kernels
from workbench.ir import Network
from workbench.passes.static_reshape import constant_target, static_reshape


@pytest.mark.parametrize("target, shape, expected", [
    (("batch", -1), ("batch", 3, 4), [0, -1]),                  # x.view(x.size(0), -1)
    (("batch", "seq", 4, 8), ("batch", "seq", 32), [0, 0, 4, 8]),
    (("batch*seq", 32), ("batch", "seq", 4, 8), [-1, 32]),      # -1 inferred from non-zero ints only
    (("seq", "batch*4", 8), ("seq", "batch", 32), None),        # -1 next to a copy: ambiguous if seq == 0
    (("a*b", "c*d"), ("a", "b", "c", "d"), None),               # two unknowns
    (("n", -1, "m"), ("x", "y"), None),                         # an unknown next to an explicit -1
    ((2, 0, 3), ("n", "k", 3), [2, 0, 3]),                      # already static
])
def test_constant_target(target, shape, expected):
    assert constant_target(target, shape) == expected


def test_reshape_to_another_tensors_symbolic_shape_gets_a_constant_target():
    requires_kernels("Shape")  # the Shape op module gives Shape(x) its symbolic value
    net = Network("t")
    x = net.add_input("x", "float32", ("batch", 12))
    y = net.add_input("y", "float32", ("batch", 3, 4))
    reshape = net.add_layer("Reshape", [x, net.add_layer("Shape", [y], name="shape").output], name="reshape")
    net.mark_output(net.add_layer("Add", [reshape.output, y]).output)
    out, changed = static_reshape(net)
    assert changed and ops(out) == ["Shape", "Reshape", "Add"]
    assert out.weights[out.layers[1].inputs[1]].tolist() == [0, 3, 4]
    assert_same_numerics(net, [static_reshape], {"x": rand(2, 12, seed=1), "y": rand(2, 3, 4, seed=2)})


def test_constant_targets_are_left_alone():
    net = Network("t")
    x = net.add_input("x", "float32", ("batch", 12))
    net.mark_output(net.add_shuffle(x, shape=[0, 3, 4]).output)
    assert static_reshape(net)[1] is False
