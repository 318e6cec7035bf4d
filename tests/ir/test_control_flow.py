"""Subgraphs in the IR: captured names, reads, validation, copies, parsing (depth limit) and the shape
rules of If, Loop and Scan with symbolic dims."""
import numpy as np
import pytest

import workbench as wb
from workbench.ir import Layer, Network
from workbench.ir.network import MAX_SUBGRAPH_DEPTH
from workbench.ir.ops import Info
from workbench.ir.shapes import infer_shapes
from tests.models import control as C


def branch(name: str, op: str, inputs: list, out: str) -> Network:
    """A branch of one layer reading `inputs` (names of the enclosing graph, or its own weight 'k')."""
    sub = Network(name)
    sub.add_constant(np.float32(2.0), "k")
    sub.layers.append(Layer(f"{name}_layer", op, inputs, [out]))
    sub.outputs.append(out)
    return sub


def if_network() -> Network:
    """y = If(c) then x * k else Relu(w); x and c are graph inputs, w a weight read only by a branch."""
    net = Network("if")
    net.add_input("c", "bool", ())
    net.add_input("x", "float32", ("batch", 3))
    net.add_constant(np.ones(3, np.float32), "w")
    net.layers.append(Layer("if", "If", ["c"], ["y"], {"then_branch": branch("then", "Mul", ["x", "k"], "t"),
                                                        "else_branch": branch("else", "Relu", ["w"], "e")}))
    net.outputs.append("y")
    infer_shapes(net)
    return net


# ---------------------------------------------------------------------------------- IR
def test_captured_names_are_computed_from_the_subgraph():
    net = if_network()
    layer = net.layers[0]
    assert layer.attrs["then_branch"].captured() == ["x"]  # its own weight 'k' is not captured
    assert layer.attrs["else_branch"].captured() == ["w"]
    assert layer.outer_reads() == ["x", "w"] and layer.reads() == ["c", "x", "w"]
    assert [l.name for l in net.consumers()["w"]] == ["if"]


def test_a_subgraph_output_may_be_an_outer_value_and_nested_captures_bubble_up():
    inner = Network("inner", outputs=["x"])
    middle = Network("middle")
    middle.layers.append(Layer("nested", "If", ["c"], ["m"], {"then_branch": inner, "else_branch": inner.copy()}))
    middle.outputs.append("m")
    assert inner.captured() == ["x"] and middle.captured() == ["c", "x"]


def test_validate_checks_outer_references_of_subgraphs():
    net = if_network()
    net.validate()
    net.layers[0].attrs["then_branch"].layers[0].inputs = ["ghost", "k"]
    with pytest.raises(wb.ValidationError, match=r"'if' \(If\) attribute 'then_branch'.*ghost"):
        net.validate()


def test_validate_refuses_a_subgraph_reading_a_value_defined_after_its_layer():
    net = if_network()
    net.layers.append(Layer("late", "Relu", ["x"], ["late_out"]))
    net.layers[0].attrs["else_branch"].layers[0].inputs = ["late_out"]
    with pytest.raises(wb.ValidationError, match="late_out"):
        net.validate()


def test_validate_limits_nesting():
    net = wb.load_onnx(C.nested_model(1))
    sub = Network("leaf", outputs=["x"])
    for _ in range(MAX_SUBGRAPH_DEPTH):
        other = Network("other", outputs=["x"])
        sub = Network("wrap", layers=[Layer("if", "If", ["c"], ["o"], {"then_branch": sub, "else_branch": other})],
                      outputs=["o"])
    net.layers[0].attrs["then_branch"] = sub
    with pytest.raises(wb.ValidationError, match="nested more than"):
        net.validate()


def test_copy_deep_copies_subgraphs():
    net = if_network()
    other = net.copy()
    other.layers[0].attrs["then_branch"].layers[0].inputs[0] = "changed"
    other.layers[0].attrs["then_branch"].outputs.append("extra")
    then = net.layers[0].attrs["then_branch"]
    assert then.layers[0].inputs[0] == "x" and then.outputs == ["t"]
    assert other.layers[0].attrs["else_branch"] is not net.layers[0].attrs["else_branch"]


# ---------------------------------------------------------------------------------- parser
def test_graph_attributes_become_sub_networks():
    net = wb.load_onnx(C.loop_model())
    body = net.layers[0].attrs["body"]
    assert isinstance(body, Network) and body.inputs == ["i", "c_in", "y_in"]
    assert "two" in body.weights and body.captured() == ["x", "stop"]
    nested = [l for l in body.layers if l.op == "If"][0]
    assert nested.outer_reads() == ["y_in", "x"]


def test_nesting_deeper_than_the_limit_is_a_parse_error():
    wb.load_onnx(C.nested_model(MAX_SUBGRAPH_DEPTH))
    with pytest.raises(wb.ParseError, match=f"nested more than {MAX_SUBGRAPH_DEPTH} deep"):
        wb.load_onnx(C.nested_model(MAX_SUBGRAPH_DEPTH + 1))


def test_an_untyped_body_input_takes_the_type_of_what_feeds_it():
    model = C.loop_model()
    model.graph.node[0].attribute[0].g.input[2].ClearField("type")
    body = wb.load_onnx(model).layers[0].attrs["body"]
    assert body.tensors["y_in"].dtype == "float32" and body.tensors["y_in"].shape == ("n", 3)


# ---------------------------------------------------------------------------------- shape rules
def test_if_merges_branch_shapes_equal_dims_stay_others_become_fresh():
    net = wb.load_onnx(C.if_model())
    n, wide = net.tensors["y"].shape
    assert n == "n" and isinstance(wide, str) and wide.startswith("if")  # (n, 4) vs (n, 8)
    assert net.tensors["z2"].shape == ("n", 4)


def test_if_on_a_known_condition_takes_that_branch_with_its_values():
    from workbench.passes.infer import infer

    net = if_network()
    net.weights["c"] = np.array(False)
    net.inputs.remove("c")
    infos = infer(net)  # with the evaluator: Relu(w) inside the branch is computed
    np.testing.assert_array_equal(infos["y"].value, np.ones(3, np.float32))
    assert infos["y"].shape == (3,)


def test_if_refuses_branches_of_different_dtypes():
    net = if_network()
    net.layers[0].attrs["else_branch"].layers[0] = Layer("cast", "Cast", ["w"], ["e"], {"to": 7})
    with pytest.raises(wb.ShapeError, match="int64"):
        infer_shapes(net)


def test_loop_outputs_carry_symbolic_dims_and_a_fresh_iteration_count():
    net = wb.load_onnx(C.loop_model())
    assert net.tensors["y"].shape == ("n", 3)
    count, *rest = net.tensors["ys"].shape
    assert rest == ["n", 3] and count.startswith("loop_iterations")
    assert net.tensors["is"].shape == (count,) and net.tensors["is"].dtype == "int64"
    assert net.layers[0].attrs["body"].tensors["xi"].shape == ("n", 3)  # body inferred with outer x


@pytest.mark.parametrize("early_stop, count", [(False, "n"), (True, None)])
def test_a_loop_over_a_dim_counts_that_dim_unless_it_may_stop_early(early_stop, count):
    from onnx import helper as h

    go = h.make_node("Less", ["i", "three"], ["go"]) if early_stop else h.make_node("Identity", ["yes"], ["go"])
    body = h.make_graph([go, h.make_node("Identity", ["i"], ["i_out"])], "body",
                        [C.vi("i", C.I64, []), C.vi("c", C.B, [])], [C.vi("go", C.B, []), C.vi("i_out", C.I64)],
                        [C.const("yes", np.array(True)), C.const("three", np.int64(3))])
    model = C.model([h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "zero"], ["n"]),
                     h.make_node("Loop", ["n", ""], ["steps"], body=body)],
                    [C.vi("x", C.F, ["n", 2])], [C.vi("steps", C.I64)], [C.const("zero", np.int64(0))])
    (steps,) = wb.load_onnx(model).tensors["steps"].shape
    assert steps == count if count else steps.startswith("loop_iterations")


@pytest.mark.filterwarnings("ignore")
def test_a_carried_value_that_grows_is_widened_to_a_fresh_dim():
    pytest.importorskip("torch")
    _, model = C.torch_scripted_model()
    net = wb.load_onnx(model)
    loop = [l for l in net.layers if l.op == "Loop"][0]
    grown = net.tensors[loop.outputs[0]].shape  # torch.cat in the body: one row more per iteration
    assert isinstance(grown[0], str) and grown[1] == 4


@pytest.mark.parametrize("axes, out_axes, want", [
    ((0, 0), (0,), ((4,), ("T", 4))),
    ((1, -1), (1,), ((4,), (4, "T"))),
    ((0, 1), (-1,), ((4,), (4, "T"))),
])
def test_scan_shapes_follow_the_axes(axes, out_axes, want):
    net = wb.load_onnx(C.scan_model(axes=axes, out_axes=out_axes))
    assert (net.tensors["s"].shape, net.tensors["os"].shape) == want


def test_scan_opset_8_has_a_batch_axis():
    from onnx import helper as h

    body = h.make_graph([h.make_node("Add", ["s_in", "x_t"], ["s_out"]), h.make_node("Identity", ["s_out"], ["o"])],
                        "b", [C.vi("s_in", C.F, [2]), C.vi("x_t", C.F, [2])], [C.vi("s_out"), C.vi("o")])
    model = C.model([h.make_node("Scan", ["", "s0", "x"], ["s", "os"], body=body, num_scan_inputs=1)],
                    [C.vi("s0", C.F, ["B", 2]), C.vi("x", C.F, ["B", "T", 2])], [C.vi("s"), C.vi("os")], opset=8)
    net = wb.load_onnx(model)
    assert net.tensors["s"].shape == ("B", 2) and net.tensors["os"].shape == ("B", "T", 2)


def test_scan_rule_needs_a_valid_num_scan_inputs():
    model = C.scan_model()
    attr = [a for a in model.graph.node[0].attribute if a.name == "num_scan_inputs"][0]
    attr.i = 5
    with pytest.raises(wb.WorkbenchError, match="num_scan_inputs"):
        wb.load_onnx(model)


def test_body_rule_checks_the_input_count():
    model = C.loop_model()
    model.graph.node[0].attribute[0].g.input.append(C.vi("extra"))
    with pytest.raises(wb.WorkbenchError, match=r"Loop body takes 4 inputs; it must take 2 \+ 1"):
        wb.load_onnx(model)


def test_if_branches_of_different_ranks_give_an_unknown_shape():
    assert infer_shapes(if_network())["y"] == Info("float32", None)  # (batch, 3) or (3,)
