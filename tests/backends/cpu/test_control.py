"""If, Loop and Scan through the whole CPU pipeline (parse, build, execute), on fresh random inputs,
against onnx.reference, and against onnxruntime where onnx.reference leaves features out (Scan
directions and axes other than 0) or gets them wrong (its Loop vstacks scan outputs, which is not
stacking for per-iteration values of rank 0 or > 1)."""
import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import workbench as wb
from tests.models import control as C
from tests.oracle import rand


def ours(model, feeds: dict, precision: str = "fp32") -> dict:
    net = wb.load_onnx(model)
    profile = {name: (np.shape(x),) * 3 for name, x in feeds.items()}
    engine = wb.build(net, wb.BuilderConfig(device="cpu", precision=precision, profiles=[profile]))
    return engine.create_execution_context().execute(feeds)


def reference(model, feeds: dict) -> dict:
    return dict(zip([o.name for o in model.graph.output], ReferenceEvaluator(model).run(None, feeds)))


def onnxruntime(model, feeds: dict) -> dict:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in model.graph.output], session.run(None, feeds)))


def assert_same(got: dict, want: dict, rtol=1e-5, atol=1e-6) -> None:
    assert set(got) == set(want)
    for name, w in want.items():
        assert got[name].dtype == w.dtype and got[name].shape == w.shape, name
        np.testing.assert_allclose(got[name], w, rtol=rtol, atol=atol, err_msg=name)


def loop_feeds(seed: int, n: int = 2, stop: int = 4, trip: int | None = 6, cond: bool | None = True) -> dict:
    feeds = {"x": rand(n, 3, seed=seed), "y0": rand(n, 3, seed=seed + 1), "stop": np.array(stop, np.int64)}
    if trip is not None:
        feeds["trip"] = np.array(trip, np.int64)
    if cond is not None:
        feeds["cond"] = np.array(cond)
    return feeds


@pytest.mark.parametrize("cond", [True, False])
@pytest.mark.parametrize("n", [1, 3])
def test_if_runs_the_branch_the_condition_picks(cond, n):
    model = C.if_model()
    feeds = {"c": np.array(cond), "x": rand(n, 4, seed=n)}
    assert_same(ours(model, feeds), reference(model, feeds))


@pytest.mark.parametrize("stop, trip, cond", [(4, 6, True), (9, 3, True), (0, 6, True)])
def test_loop_with_trip_count_and_condition(stop, trip, cond):
    model = C.loop_model()
    feeds = loop_feeds(stop + trip, stop=stop, trip=trip, cond=cond)
    assert_same(ours(model, feeds), onnxruntime(model, feeds))


def test_loop_without_trip_count_stops_on_the_condition():
    model = C.loop_model(with_trip=False)
    feeds = loop_feeds(3, stop=5, trip=None)
    got = ours(model, feeds)
    assert got["is"].tolist() == [0, 1, 2, 3, 4, 5]
    assert_same(got, onnxruntime(model, feeds))


def test_loop_without_condition_input_still_obeys_the_body_condition():
    model = C.loop_model(with_cond=False)
    feeds = loop_feeds(4, stop=2, trip=7, cond=None)
    got = ours(model, feeds)
    assert got["is"].tolist() == [0, 1, 2]
    assert_same(got, onnxruntime(model, feeds))


@pytest.mark.parametrize("trip, cond", [(0, True), (6, False)])
def test_loop_with_zero_iterations_returns_the_initial_values_and_empty_scans(trip, cond):
    feeds = loop_feeds(5, trip=trip, cond=cond)
    got = ours(C.loop_model(), feeds)
    np.testing.assert_array_equal(got["y"], feeds["y0"])
    # The body's inferred shape of a scanned value, with its dims bound: the rank the engine declares.
    # (onnxruntime gives (0,) where the model declares no shape for the body output.)
    assert got["ys"].shape == (0, 2, 3) and got["is"].shape == (0,) and got["is"].dtype == np.int64


def test_loop_with_rank_1_carried_values_matches_onnx_reference():
    from onnx import helper as h

    body = h.make_graph([h.make_node("Add", ["y_in", "x"], ["y_out"]), h.make_node("Identity", ["c"], ["c_out"]),
                         h.make_node("Mul", ["y_out", "y_out"], ["sq"])], "body",
                        [C.vi("i", C.I64, []), C.vi("c", C.B, []), C.vi("y_in", C.F, [3])],
                        [C.vi("c_out", C.B, []), C.vi("y_out"), C.vi("sq")])
    inputs = [C.vi("trip", C.I64, []), C.vi("cond", C.B, []), C.vi("y0", C.F, [3]), C.vi("x", C.F, [3])]
    model = C.model([h.make_node("Loop", ["trip", "cond", "y0"], ["y", "sqs"], body=body)], inputs,
                    [C.vi("y"), C.vi("sqs")])
    feeds = {"trip": np.array(4, np.int64), "cond": np.array(True), "y0": rand(3, seed=1), "x": rand(3, seed=2)}
    assert_same(ours(model, feeds), reference(model, feeds))


@pytest.mark.parametrize("t", [1, 5])
def test_scan_forward_on_axis_0_matches_onnx_reference(t):
    model = C.scan_model()
    feeds = {"s0": rand(4, seed=t), "a": rand(t, 4, seed=t + 1), "b": rand(t, 4, seed=t + 2)}
    assert_same(ours(model, feeds), reference(model, feeds))


@pytest.mark.parametrize("directions", [(1, 0), (0, 1)])
@pytest.mark.parametrize("axes", [(0, 0), (1, -1), (0, 1)])
@pytest.mark.parametrize("out_directions, out_axes", [((0,), (0,)), ((1,), (1,)), ((1,), (-1,))])
def test_scan_directions_and_axes_match_onnxruntime(directions, axes, out_directions, out_axes):
    model = C.scan_model(directions, axes, out_directions, out_axes)
    shape = lambda axis: (5, 4) if axis in (0, -2) else (4, 5)  # noqa: E731
    feeds = {"s0": rand(4, seed=1), "a": rand(*shape(axes[0]), seed=2), "b": rand(*shape(axes[1]), seed=3)}
    assert_same(ours(model, feeds), onnxruntime(model, feeds))


def test_scan_opset_8_with_sequence_lengths():
    from onnx import helper as h

    body = h.make_graph([h.make_node("Add", ["s_in", "x_t"], ["s_out"]), h.make_node("Mul", ["s_out", "k"], ["o"])],
                        "b", [C.vi("s_in", C.F, [2]), C.vi("x_t", C.F, [2])], [C.vi("s_out"), C.vi("o")])
    model = C.model([h.make_node("Scan", ["lens", "s0", "x"], ["s", "os"], body=body, num_scan_inputs=1,
                                 directions=[1])],
                    [C.vi("lens", C.I64, [3]), C.vi("s0", C.F, [3, 2]), C.vi("x", C.F, [3, 4, 2])],
                    [C.vi("s"), C.vi("os")], [C.const("k", np.float32(3.0))], opset=8)
    s0, x, lens = rand(3, 2, seed=1), rand(3, 4, 2, seed=2), np.array([4, 2, 0], np.int64)
    got = ours(model, {"lens": lens, "s0": s0, "x": x})
    for b, n in enumerate(lens):
        states = np.cumsum(x[b, :n][::-1], axis=0) + s0[b]
        np.testing.assert_allclose(got["s"][b], states[-1] if n else s0[b], rtol=1e-6)
        np.testing.assert_allclose(got["os"][b, :n], states * 3, rtol=1e-6)
        assert not got["os"][b, n:].any()


def test_fp16_build_rounds_but_agrees():
    model = C.loop_model()
    feeds = loop_feeds(8)
    assert_same(ours(model, feeds, "fp16"), ours(model, feeds), rtol=1e-2, atol=1e-2)


@pytest.mark.filterwarnings("ignore")
def test_a_torch_legacy_export_with_scripted_control_flow():
    torch = pytest.importorskip("torch")
    module, model = C.torch_scripted_model()
    net = wb.load_onnx(model)
    engine = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=8))
    assert {"Loop", "If"} <= {layer.op for layer in engine.network.layers}
    assert engine.report["passes"]["inline_if"] >= 1  # the static-dim check became its taken branch
    context = engine.create_execution_context()
    for t in (1, 6):
        x = torch.from_numpy(rand(t, 4, seed=t) * 3)
        got = context.execute({"x": x.numpy()})["y"]
        np.testing.assert_allclose(got, module(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_a_kernel_fault_inside_a_body_names_the_layers():
    model = C.scan_model()
    feeds = {"s0": rand(4, seed=1), "a": rand(5, 4, seed=2), "b": rand(6, 4, seed=3)}
    with pytest.raises(wb.WorkbenchError, match="different lengths"):
        ours(model, feeds)


def test_a_loop_with_only_a_trip_count_runs_that_many_times():
    from onnx import helper as h

    body = h.make_graph([h.make_node("Identity", ["yes"], ["go"]), h.make_node("Mul", ["i", "i"], ["sq"])], "body",
                        [C.vi("i", C.I64, []), C.vi("c", C.B, [])], [C.vi("go", C.B, []), C.vi("sq", C.I64)],
                        [C.const("yes", np.array(True))])
    model = C.model([h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "zero"], ["n"]),
                     h.make_node("Loop", ["n", ""], ["squares"], body=body)],
                    [C.vi("x", C.F, ["n", 2])], [C.vi("squares", C.I64)], [C.const("zero", np.int64(0))])
    got = ours(model, {"x": rand(5, 2, seed=1)})["squares"]
    np.testing.assert_array_equal(got, np.arange(5) ** 2)
