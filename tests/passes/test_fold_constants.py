import numpy as np

from tests.oracle import rand
from tests.passes.helpers import assert_same_numerics, ops, requires_kernels
from workbench.ir import Network
from workbench.passes.fold_constants import fold_constants
from workbench.passes.infer import infer


def _i64(*values):
    return np.array(values, np.int64)


def test_weight_only_layers_become_weights():
    requires_kernels("Transpose", "Mul")
    net = Network("t")
    x = net.add_input("x", "float32", (2, 5))
    w = net.add_constant(rand(4, 5, seed=1), "w")
    wt = net.add_layer("Transpose", [w], {"perm": [1, 0]}, "transpose")
    scaled = net.add_elementwise(wt.output, np.float32(2.0), "Mul", name="scale")
    net.mark_output(net.add_matmul(x, scaled.output, name="mm").output)
    out, changed = fold_constants(net)
    assert changed and ops(out) == ["MatMul"]
    np.testing.assert_array_equal(out.weights[out.layers[0].inputs[1]], net.weights[w].T * 2)
    assert ops(net) == ["Transpose", "Mul", "MatMul"], "the input network must not change"
    assert_same_numerics(net, [fold_constants])


def _reshape_by_shape_chain(net, x, index):
    """Reshape(x, Concat(Unsqueeze(Gather(Shape(x), index)), [-1])): torch's x.view(x.size(i), -1)."""
    shape = net.add_layer("Shape", [x], name="shape")
    dim = net.add_layer("Gather", [shape.output, net.add_constant(np.int64(index), "idx")], {"axis": 0}, "gather")
    dim1 = net.add_layer("Unsqueeze", [dim.output, net.add_constant(_i64(0), "axes")], name="unsqueeze")
    target = net.add_layer("Concat", [dim1.output, net.add_constant(_i64(-1), "minus1")], {"axis": 0}, "concat")
    return net.add_layer("Reshape", [x, target.output], name="reshape")


def test_shape_chain_of_a_static_input_folds_into_the_reshape():
    requires_kernels("Shape", "Gather", "Unsqueeze", "Concat")
    net = Network("t")
    x = net.add_input("x", "float32", (2, 3, 4))
    net.mark_output(net.add_activation(_reshape_by_shape_chain(net, x, 1).output, "Relu").output)
    out, changed = fold_constants(net)
    assert changed and ops(out) == ["Reshape", "Relu"]
    np.testing.assert_array_equal(out.weights[out.layers[0].inputs[1]], [3, -1])
    assert_same_numerics(net, [fold_constants])


def test_shape_chain_of_a_dynamic_dim_stays():
    net = Network("t")
    x = net.add_input("x", "float32", ("batch", 3, 4))
    net.mark_output(_reshape_by_shape_chain(net, x, 0).output)
    out, _ = fold_constants(net)
    assert "Shape" in ops(out) and "Reshape" in ops(out)


def test_constant_of_shape_bomb_is_not_materialised():
    net = Network("t")
    x = net.add_input("x", "float32", (1, 1))
    bomb = net.add_layer("ConstantOfShape", [net.add_constant(_i64(10_000, 10_000), "dims")], name="bomb")
    net.mark_output(net.add_elementwise(x, bomb.output, "Add").output)  # never run: structure only
    infos = infer(net.copy())
    assert infos[bomb.output].value is None and infos[bomb.output].shape == (10_000, 10_000)
    out, changed = fold_constants(net)
    assert not changed and ops(out) == ["ConstantOfShape", "Add"]


def test_random_ops_are_not_folded():
    net = Network("t")
    w = net.add_constant(rand(2, 2, seed=1), "w")
    noise = net.add_layer("RandomNormalLike", [w], name="noise")
    net.mark_output(net.add_activation(noise.output, "Relu").output)
    out, changed = fold_constants(net)
    assert ops(out)[0] == "RandomNormalLike"


def test_a_layer_writing_a_graph_output_stays():
    requires_kernels("Transpose")
    net = Network("t")
    net.mark_output(net.add_layer("Transpose", [net.add_constant(rand(2, 3, seed=1), "w")]).output)
    assert fold_constants(net)[1] is False


def test_quantize_dequantize_pairs_are_kept():
    net = Network("t")
    x = net.add_input("x", "float32", (2, 3))
    w = net.add_constant(np.arange(6, dtype=np.int8).reshape(3, 2), "w_q")
    scale = net.add_constant(np.float32(0.1), "w_scale")
    dq = net.add_layer("DequantizeLinear", [w, scale], name="dq")
    net.mark_output(net.add_matmul(x, dq.output).output)
    assert ops(fold_constants(net)[0]) == ["DequantizeLinear", "MatMul"]
