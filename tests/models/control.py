"""ONNX models with control flow (If, Loop, Scan) written with onnx.helper, for tests.

Every subgraph reads at least one value of the graph around it (an outer-scope capture), since
that is what makes control flow hard to get right.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

OPSET = 17
F, I64, B = T.FLOAT, T.INT64, T.BOOL


def vi(name: str, elem=F, shape=None) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, shape)


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def model(nodes, inputs, outputs, initializers=(), opset: int = OPSET) -> onnx.ModelProto:
    g = h.make_graph(nodes, "control", inputs, outputs, list(initializers))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8  # onnxruntime reads it
    return m


def if_model(features: int = 4) -> onnx.ModelProto:
    """y = If(c) then x * w + b (w, b outer) else Concat(x, x) (twice as wide): outputs merge shapes.

    Also z = If(c) then x else x * w (a branch returning an outer value directly), and z2 = z + Relu(x).
    """
    then = h.make_graph([h.make_node("Mul", ["x", "w"], ["t0"]), h.make_node("Add", ["t0", "b"], ["t1"])],
                        "then", [], [vi("t1")])
    other = h.make_graph([h.make_node("Concat", ["x", "x"], ["e0"], axis=1)], "else", [], [vi("e0")])
    then2 = h.make_graph([], "then2", [], [vi("x")])
    other2 = h.make_graph([h.make_node("Mul", ["x", "w"], ["xw"])], "else2", [], [vi("xw")])
    rng = np.random.default_rng(0)
    return model([h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
                  h.make_node("Relu", ["x"], ["rx"]),
                  h.make_node("If", ["c"], ["z"], then_branch=then2, else_branch=other2),
                  h.make_node("Add", ["z", "rx"], ["z2"])],
                 [vi("c", B, []), vi("x", F, ["n", features])], [vi("y"), vi("z2")],
                 [const("w", rng.standard_normal(features).astype(np.float32)),
                  const("b", rng.standard_normal(features).astype(np.float32))])


def loop_model(with_trip: bool = True, with_cond: bool = True, opset: int = OPSET) -> onnx.ModelProto:
    """Loop carrying y (+= x * iteration), scanning y and the iteration number; the body stops once the
    iteration number reaches the outer `stop`, and runs a nested If reading the outer `x`."""
    nested = h.make_graph([h.make_node("Add", ["y_in", "x"], ["n0"])], "nested_then", [], [vi("n0")])
    nested_else = h.make_graph([h.make_node("Sub", ["y_in", "x"], ["n1"])], "nested_else", [], [vi("n1")])
    body = h.make_graph(
        [h.make_node("Cast", ["i"], ["fi"], to=F),
         h.make_node("Mul", ["x", "fi"], ["xi"]),
         h.make_node("Add", ["y_in", "xi"], ["y_mid"]),
         h.make_node("Less", ["i", "two"], ["small"]),
         h.make_node("If", ["small"], ["y_out"], then_branch=nested, else_branch=nested_else),
         h.make_node("Less", ["i", "stop"], ["go"]),
         h.make_node("Add", ["y_mid", "y_out"], ["scan_y"]),
         h.make_node("Identity", ["i"], ["scan_i"])],
        "body", [vi("i", I64, []), vi("c_in", B, []), vi("y_in", F, None)],
        [vi("go", B, []), vi("y_out"), vi("scan_y"), vi("scan_i", I64)],
        [const("two", np.int64(2))])
    inputs = [vi("x", F, ["n", 3]), vi("y0", F, ["n", 3]), vi("stop", I64, [])]
    if with_trip:
        inputs.append(vi("trip", I64, []))
    if with_cond:
        inputs.append(vi("cond", B, []))
    node = h.make_node("Loop", ["trip" if with_trip else "", "cond" if with_cond else "", "y0"],
                       ["y", "ys", "is"], body=body)
    return model([node], inputs, [vi("y"), vi("ys"), vi("is", I64)], opset=opset)


def scan_model(directions=(0, 0), axes=(0, 0), out_directions=(0,), out_axes=(0,)) -> onnx.ModelProto:
    """Scan over a (T, 4)-ish input `a` and a (T, 4)-ish input `b` along `axes`: state s += a_t * k + b_t
    (k an outer weight); the scan output is s * 2."""
    body = h.make_graph(
        [h.make_node("Mul", ["a_t", "k"], ["ak"]), h.make_node("Add", ["s_in", "ak"], ["s1"]),
         h.make_node("Add", ["s1", "b_t"], ["s_out"]), h.make_node("Add", ["s_out", "s_out"], ["o"])],
        "scan_body", [vi("s_in", F, [4]), vi("a_t", F, [4]), vi("b_t", F, [4])], [vi("s_out"), vi("o")])
    node = h.make_node("Scan", ["s0", "a", "b"], ["s", "os"], body=body, num_scan_inputs=2,
                       scan_input_directions=list(directions), scan_input_axes=list(axes),
                       scan_output_directions=list(out_directions), scan_output_axes=list(out_axes))
    shape = lambda axis: ["T", 4] if axis in (0, -2) else [4, "T"]  # noqa: E731
    k = np.random.default_rng(1).standard_normal(4).astype(np.float32)
    return model([node], [vi("s0", F, [4]), vi("a", F, shape(axes[0])), vi("b", F, shape(axes[1]))],
                 [vi("s"), vi("os")], [const("k", k)])


def nested_model(depth: int) -> onnx.ModelProto:
    """y = x inside `depth` nested If then-branches (each also has an else branch returning x).

    Built in place: protobuf refuses to copy or parse messages nested this deep (about 100 levels).
    """
    m = model([], [vi("c", B, []), vi("x", F, [2])], [vi("y")])
    g = m.graph
    for d in range(depth):
        node = g.node.add()
        node.op_type, node.input[:], node.output[:] = "If", ["c"], ["y" if d == 0 else f"y{d}"]
        other = node.attribute.add()
        other.name, other.type = "else_branch", onnx.AttributeProto.GRAPH
        other.g.CopyFrom(h.make_graph([h.make_node("Identity", ["x"], [f"e{d}"])], f"e{d}", [], [vi(f"e{d}")]))
        then = node.attribute.add()
        then.name, then.type = "then_branch", onnx.AttributeProto.GRAPH
        g = then.g
        g.name = f"g{d}"
        g.output.add().name = f"y{d + 1}"
    g.node.add().CopyFrom(h.make_node("Identity", ["x"], [f"y{depth}"]))
    return m


def torch_scripted_model():
    """(torch module, its ONNX export by torch's legacy exporter): scripted functions with data-dependent
    control flow (a Loop growing its output with a nested If, a data-dependent If) and a check of a
    static dim (`if x.size(1) == 3`) that folding makes a constant If. Imports torch: call it only where
    torch is installed."""
    import io
    import warnings

    import torch

    @torch.jit.script
    def clipped_cumsum(x: torch.Tensor, limit: float) -> torch.Tensor:
        total = torch.zeros_like(x[0])
        out = torch.zeros_like(x[:0])
        for i in range(x.size(0)):
            total = total + x[i]
            if bool(total.sum() > limit):
                total = total * 0.5
            out = torch.cat([out, total.unsqueeze(0)], 0)
        if bool(out.mean() > 0):
            out = out - 1.0
        return out

    @torch.jit.script
    def flat(x: torch.Tensor) -> torch.Tensor:
        if x.size(1) == 3:
            return x.flatten(1)
        return x + 1.0

    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            return clipped_cumsum(flat(self.lin(x)), 2.0) * 2

    torch.manual_seed(0)
    module = Module().eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Without the exporter's own folding the rank check stays an If on a computable condition.
        torch.onnx.export(module, (torch.randn(5, 4),), buf, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "t"}}, do_constant_folding=False)
    return module, onnx.load_from_string(buf.getvalue())
