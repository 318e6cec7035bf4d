import numpy as np
import pytest

from tests.oracle import rand
from tests.passes.helpers import assert_same_numerics, ops
from workbench.ir import Network
from workbench.passes.eliminate_dead_layers import eliminate_dead_layers


def _net():
    net = Network("t")
    return net, net.add_input("x", "float32", (2, 3))


def test_unneeded_layers_and_weights_are_removed_inputs_stay():
    net, x = _net()
    net.add_input("unused", "float32", (1,))
    net.add_elementwise(x, rand(3, seed=1), "Add", name="dead_add")
    dead = net.add_activation(x, "Relu", name="dead_relu")
    net.add_activation(dead.output, "Relu", name="dead_too")
    net.mark_output(net.add_activation(x, "Relu", name="live").output)
    out, changed = eliminate_dead_layers(net)
    assert changed and [layer.name for layer in out.layers] == ["live"]
    assert out.weights == {} and out.inputs == ["x", "unused"]
    assert set(out.tensors) == {"x", "unused", "live_out"}
    assert len(net.layers) == 4, "the input network must not change"


def test_identity_between_layers_is_bypassed():
    net, x = _net()
    a = net.add_activation(x, "Relu", name="a")
    ident = net.add_layer("Identity", [a.output], name="ident")
    net.mark_output(net.add_elementwise(ident.output, rand(3, seed=1), "Add", name="b").output)
    out, changed = eliminate_dead_layers(net)
    assert changed and ops(out) == ["Relu", "Add"] and out.layers[1].inputs[0] == a.output
    assert_same_numerics(net, [eliminate_dead_layers])


def test_identity_writing_a_graph_output_keeps_the_output_name():
    net, x = _net()
    a = net.add_activation(x, "Relu", name="a")
    b = net.add_elementwise(a.output, rand(3, seed=1), "Add", name="b")
    net.mark_output(net.add_layer("Identity", [a.output], name="ident").output)
    net.mark_output(b.output)
    out, changed = eliminate_dead_layers(net)
    assert changed and ops(out) == ["Relu", "Add"] and out.outputs == net.outputs
    assert out.layers[0].outputs == ["ident_out"] and out.layers[1].inputs[0] == "ident_out"
    assert_same_numerics(net, [eliminate_dead_layers])


@pytest.mark.parametrize("source", ["input", "weight", "output"])
def test_identity_aliasing_an_input_weight_or_output_stays(source):
    net, x = _net()
    if source == "weight":
        x = net.add_constant(rand(2, 3, seed=1), "w")
    elif source == "output":
        x = net.add_activation(x, "Relu").output
        net.mark_output(x)
    net.mark_output(net.add_layer("Identity", [x], name="ident").output)
    assert "Identity" in ops(eliminate_dead_layers(net)[0])


def test_chained_identities_all_go():
    net, x = _net()
    a = net.add_activation(x, "Relu", name="a")
    i1 = net.add_layer("Identity", [a.output], name="i1")
    i2 = net.add_layer("Identity", [i1.output], name="i2")
    net.mark_output(net.add_layer("Identity", [i2.output], name="i3").output)
    out, changed = eliminate_dead_layers(net)
    assert changed and ops(out) == ["Relu"] and out.layers[0].outputs == ["i3_out"]


def test_inference_dropout_goes_training_dropout_and_used_mask_stay():
    net, x = _net()
    d1 = net.add_layer("Dropout", [x, net.add_constant(np.float32(0.3), "ratio")], name="d1")
    d2 = net.add_layer("Dropout", [d1.output, "", net.add_constant(np.bool_(True), "train")], name="d2")
    d3 = net.add_layer("Dropout", [d2.output], name="d3", num_outputs=2)
    d4 = net.add_layer("Dropout", [d3.outputs[0], "", net.add_constant(np.bool_(False), "no")], name="d4",
                       num_outputs=2)
    net.mark_output(d4.outputs[0])
    net.mark_output(d3.outputs[1])
    out, changed = eliminate_dead_layers(net)
    assert changed and [layer.name for layer in out.layers] == ["d2", "d3"]
    assert out.layers[0].inputs[0] == x and "ratio" not in out.weights and "no" not in out.weights


def test_unchanged_network_reports_no_change():
    net, x = _net()
    net.mark_output(net.add_activation(x, "Relu").output)
    assert eliminate_dead_layers(net)[1] is False


def test_numerics_with_dropout_removed():
    net, x = _net()
    d = net.add_layer("Dropout", [x, net.add_constant(np.float32(0.5), "ratio")], name="d")
    net.mark_output(net.add_activation(d.output, "Relu").output)
    assert_same_numerics(net, [eliminate_dead_layers])


def test_values_read_only_inside_subgraphs_stay_and_identities_are_renamed_there():
    from workbench.ir import Layer

    net, x = _net()
    used = net.add_activation(x, "Relu", name="used_by_branch")
    alias = net.add_layer("Identity", [used.output], name="alias")
    w = net.add_constant(rand(3, seed=2), "w_branch")
    c = net.add_input("c", "bool", ())
    then = Network("then", outputs=["s"], layers=[Layer("add", "Add", [alias.output, w], ["s"])])
    other = Network("else", outputs=[alias.output])
    branch_if = net.add_layer("If", [c], {"then_branch": then, "else_branch": other}, name="if")
    net.mark_output(branch_if.output)
    out, changed = eliminate_dead_layers(net)
    assert changed and ops(out) == ["Relu", "If"] and "w_branch" in out.weights
    branches = out.layers[1].attrs
    assert branches["then_branch"].layers[0].inputs[0] == used.output
    assert branches["else_branch"].outputs == [used.output]
    out.validate()
