import numpy as np
import pytest

from tests.oracle import rand
from tests.passes.helpers import assert_same_numerics, ops
from workbench.ir import Layer, Network
from workbench.passes.eliminate_dead_layers import eliminate_dead_layers
from workbench.passes.inline_if import inline_if


def branch(name: str, layers: list, outputs: list, weights: dict | None = None) -> Network:
    """A branch graph: `layers` as (op, inputs, output, attrs) tuples; it may read the enclosing graph."""
    sub = Network(name, outputs=list(outputs))
    for key, value in (weights or {}).items():
        sub.add_constant(value, key)
    sub.layers = [Layer(f"{name}_{i}", op, list(ins), [out], dict(attrs)) for i, (op, ins, out, attrs) in
                  enumerate(layers)]
    return sub


def if_net(cond, then: Network, other: Network, n_out: int = 1):
    """Network: x (2, 3); t = Relu(x) (a name the branches also use); If(cond) -> outputs, marked."""
    net = Network("t")
    x = net.add_input("x", "float32", (2, 3))
    net.add_layer("Relu", [x], name="t")
    c = net.add_constant(np.array(cond), "c") if isinstance(cond, bool) else net.add_input("c", "bool", ())
    layer = net.add_layer("If", [c], {"then_branch": then, "else_branch": other}, name="if", num_outputs=n_out)
    for out in layer.outputs:
        net.mark_output(net.add_activation(out, "Neg").output)
    return net


def scaled(name: str, factor: float) -> Network:
    """x * k + t_out: a weight 'k' of its own, a value named like the outer graph's 'neg_out' (written
    after the If), and a read of the outer 't_out'."""
    return branch(name, [("Mul", ["x", "k"], "neg_out", {}), ("Add", ["neg_out", "t_out"], "r", {})], ["r"],
                  {"k": np.full(3, factor, np.float32)})


@pytest.mark.parametrize("cond, factor", [(True, 2.0), (False, -3.0)])
def test_the_taken_branch_replaces_the_if_under_fresh_names(cond, factor):
    net = if_net(cond, scaled("then", 2.0), scaled("else", -3.0))
    out, changed = inline_if(net)
    assert changed and ops(out) == ["Relu", "Mul", "Add", "Neg"]
    mul, add = out.layers[1:3]
    assert mul.name == ("if/then_0" if cond else "if/else_0")
    assert mul.outputs == ["if/neg_out"] and add.inputs == ["if/neg_out", "t_out"]  # no clash with the outer one
    assert add.outputs == ["if_out"]  # the If's output is written directly
    np.testing.assert_array_equal(out.weights[mul.inputs[1]], np.full(3, factor, np.float32))
    out.validate()
    assert_same_numerics(net, [inline_if])


def test_an_unknown_condition_leaves_the_if():
    net = if_net(None, scaled("then", 2.0), scaled("else", 1.0))
    out, changed = inline_if(net)
    assert not changed and "If" in ops(out)


def test_outputs_that_are_outer_values_weights_or_repeats_go_through_identities():
    then = branch("then", [("Relu", ["x"], "r", {})], ["x", "w", "r", "r"], {"w": rand(2, 3, seed=1)})
    other = branch("else", [("Neg", ["x"], "n", {})], ["n", "n", "n", "n"])
    net = if_net(True, then, other, n_out=4)
    out, changed = inline_if(net)
    assert changed and ops(out).count("Identity") == 3
    assert [l for l in out.layers if l.op == "Relu"][-1].outputs == ["if_out2"]
    assert_same_numerics(net, [inline_if])
    cleaned, _ = eliminate_dead_layers(out)
    assert ops(cleaned).count("Identity") < 3


def test_a_nested_subgraph_reading_a_branch_value_is_renamed_with_it():
    inner = branch("inner", [("Add", ["t", "x"], "s", {})], ["s"])  # reads the branch's own 't'
    inner_else = branch("inner_else", [], ["t"])
    then = branch("then", [("Relu", ["x"], "t", {}), ("If", ["c2"], "u", {"then_branch": inner,
                                                                         "else_branch": inner_else})],
                  ["u"], {"c2": np.array(True)})
    net = if_net(True, then, scaled("else", 1.0))
    out, changed = inline_if(net)
    nested = [l for l in out.layers if l.op == "If"][0]
    assert changed and nested.outer_reads() == ["if/t", "x"]
    assert nested.attrs["else_branch"].outputs == ["if/t"]
    out.validate()
    assert_same_numerics(net, [inline_if])
    twice, _ = inline_if(out)  # its condition is a weight now: inlined on the next round
    assert "If" not in ops(twice)
    assert_same_numerics(net, [inline_if, eliminate_dead_layers])


def test_the_input_network_is_not_changed():
    net = if_net(True, scaled("then", 2.0), scaled("else", 1.0))
    inline_if(net)
    assert ops(net) == ["Relu", "If", "Neg"]
    assert net.layers[1].attrs["then_branch"].layers[0].outputs == ["neg_out"]
