"""Resource bombs are refused up front: quickly, with a small memory footprint, naming tensor and size.

A bomb's size may come from constants (shape inference refuses it at load time) or from an input's
VALUE at run time (the executor checks the few value-shaped ops before their kernels allocate).
"""
from __future__ import annotations

import os
import textwrap
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import workbench as wb
from workbench import limits
from workbench.runtime import plan as plan_format

from .graphs import chain_model, measure, one_node_model, value_info

LIMIT = 16 << 20         # the tensor limit these tests run under
QUICK_SECONDS = 2.0      # a refusal must come at once...
SMALL_BYTES = 8 << 20    # ...having allocated less than this (a bomb here is 256 MiB or far more)
BIG = 1 << 40

f32 = np.float32


@pytest.fixture(autouse=True)
def low_limit():
    saved = limits._override
    limits.set_tensor_limit(LIMIT)
    yield
    limits._override = saved


# op, node inputs, {size input: (moderate value ~256 MiB of output, absurd value)}, other inputs, attrs
BOMBS = {
    "ConstantOfShape": ("ConstantOfShape", ["shape"], {"shape": ([8192, 8192], [BIG, BIG])}, {}, {}),
    "Expand": ("Expand", ["x", "shape"], {"shape": ([8192, 8192], [BIG, BIG])}, {"x": np.ones(1, f32)}, {}),
    "Tile": ("Tile", ["x", "repeats"], {"repeats": ([2**25], [BIG])}, {"x": np.ones(2, f32)}, {}),
    "Range": ("Range", ["start", "limit", "delta"], {"limit": (2**25, BIG)},
              {"start": np.array(0, np.int64), "delta": np.array(1, np.int64)}, {}),
    "RangeFloat": ("Range", ["start", "limit", "delta"], {"limit": (f32(2**26), f32(1e15))},
                   {"start": np.array(0, f32), "delta": np.array(1, f32)}, {}),
    "Pad": ("Pad", ["x", "pads"], {"pads": ([0, 2**26], [0, BIG])}, {"x": np.ones(2, f32)}, {}),
    "OneHot": ("OneHot", ["indices", "depth", "values"], {"depth": (2**24, BIG)},
               {"indices": np.arange(4), "values": np.array([0, 1], f32)}, {}),
    "ResizeScales": ("Resize", ["x", "", "scales"], {"scales": (f32([1, 1, 2048, 2048]), f32([1, 1, 1e9, 1e9]))},
                     {"x": np.ones((1, 1, 4, 4), f32)}, {}),
    "ResizeSizes": ("Resize", ["x", "", "", "sizes"], {"sizes": ([1, 1, 8192, 8192], [1, 1, BIG, BIG])},
                    {"x": np.ones((1, 1, 4, 4), f32)}, {}),
    "CenterCropPad": ("CenterCropPad", ["x", "shape"], {"shape": ([8192, 8192], [BIG, BIG])},
                      {"x": np.ones((2, 2), f32)}, {}),
}


def _size_array(value) -> np.ndarray:
    array = np.asarray(value)
    return array.astype(np.int64) if array.dtype.kind == "i" else array


def _bomb(name: str, scale: str, at_run_time: bool):
    """(model, feeds): the size input is a constant, or a graph input fed at run time."""
    op, inputs, size, others, attrs = BOMBS[name]
    (size_name, (moderate, absurd)), = size.items()
    value = _size_array(moderate if scale == "moderate" else absurd)
    consts = dict(others)
    graph_inputs = {}
    if at_run_time:
        graph_inputs[size_name] = value
    else:
        consts[size_name] = value
    if "x" in consts:
        graph_inputs["x"] = consts.pop("x")
    return one_node_model(op, inputs, consts, graph_inputs, **attrs), graph_inputs


def _assert_refusal_names_tensor_and_size(error) -> None:
    message = str(error)
    assert "'y'" in message and "iB" in message and "the_" in message, message
    assert "set_tensor_limit" in message, message  # what to do


@pytest.mark.parametrize("scale", ["moderate", "absurd"])
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_constant_bombs_are_refused_when_loading(name, scale):
    model, _ = _bomb(name, scale, at_run_time=False)
    with measure() as cost, pytest.raises(wb.ResourceLimitError) as e:
        wb.load_onnx(model)
    _assert_refusal_names_tensor_and_size(e.value)
    assert cost.seconds < QUICK_SECONDS and cost.peak_bytes < SMALL_BYTES, (cost.seconds, cost.peak_bytes)


@pytest.mark.parametrize("scale", ["moderate", "absurd"])
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_run_time_bombs_are_refused_before_allocating_and_the_engine_stays_usable(name, scale):
    model, feeds = _bomb(name, scale, at_run_time=True)
    engine = wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu"))
    context = engine.create_execution_context()
    with measure() as cost, pytest.raises(wb.ResourceLimitError) as e:
        context.execute(feeds)
    _assert_refusal_names_tensor_and_size(e.value)
    assert cost.seconds < QUICK_SECONDS and cost.peak_bytes < SMALL_BYTES, (cost.seconds, cost.peak_bytes)
    small = {n: (np.ones_like(v) if n != "x" else v) for n, v in feeds.items()}
    if name == "RangeFloat":
        small["limit"] = np.array(3, f32)
    context.execute(small)  # the same context runs a sane request right after


def test_the_run_time_limit_is_the_configured_one():
    """Just under the limit runs, just over is refused: the check is a real size check, not a heuristic."""
    model, _ = _bomb("Range", "moderate", at_run_time=True)
    engine = wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu"))
    context = engine.create_execution_context()
    fits = LIMIT // 8  # int64 elements
    assert context.execute({"limit": np.array(fits, np.int64)})["y"].shape == (fits,)
    with pytest.raises(wb.ResourceLimitError):
        context.execute({"limit": np.array(fits + 1, np.int64)})


def test_an_engine_memory_limit_overrides_the_global_one():
    model, _ = _bomb("Range", "moderate", at_run_time=True)
    engine = wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu", memory_limit="1MiB"))
    with pytest.raises(wb.ResourceLimitError, match="over the limit of 1.0 MiB"):
        engine.create_execution_context().execute({"limit": np.array(2**18, np.int64)})


@pytest.mark.parametrize("shape", [[BIG, BIG], ["batch", 2**30, 2**30], [2**22, 2**22]])
def test_absurd_declared_inputs_are_refused(shape):
    model = one_node_model("Relu", ["x"], {}, {})
    model.graph.input.append(value_info("x", np.float32, shape))
    with measure() as cost, pytest.raises(wb.ResourceLimitError, match="graph input 'x'"):
        wb.load_onnx(model)
    assert cost.seconds < QUICK_SECONDS


def test_eye_like_of_a_huge_declared_input_is_refused():
    model = one_node_model("EyeLike", ["x"], {}, {})
    model.graph.input.append(value_info("x", np.float32, [2**20, 2**20]))
    with pytest.raises(wb.ResourceLimitError, match="'x'"):
        wb.load_onnx(model)


def test_profile_shapes_over_the_limit_are_refused_at_build():
    model = one_node_model("Relu", ["x"], {}, {})
    model.graph.input.append(value_info("x", np.float32, ["batch", 1024]))
    net = wb.load_onnx(model)
    with pytest.raises(wb.ResourceLimitError, match="'x'|'y'"):
        wb.build(net, wb.BuilderConfig(device="cpu", max_batch=2**20))


# ------------------------------------------------------------------------------ plan files
def _reseal(header: dict, blob: bytes) -> bytes:
    """A plan file with this header and weights, with a valid checksum (what a forger can make)."""
    import hashlib
    import json

    head = json.dumps(header).encode()
    body = plan_format._PREFIX.pack(plan_format.MAGIC, plan_format.FORMAT_VERSION, len(head)) + head
    body += b"\0" * (-len(body) % plan_format._ALIGN) + blob
    return body + hashlib.sha256(body).digest()


@pytest.fixture(scope="module")
def plan_parts():
    """(header dict, weights blob) of a small plan with one weight."""
    model = one_node_model("Add", ["x", "w"], {"w": np.arange(8, dtype=f32)}, {"x": np.ones(8, f32)})
    data = wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu")).serialize()
    header, blob = plan_format._split(data, "plan")
    return header, bytes(blob)


def test_a_header_claiming_more_bytes_than_the_file_is_refused_without_reading_them():
    data = plan_format._PREFIX.pack(plan_format.MAGIC, plan_format.FORMAT_VERSION, 2**62) + b"\0" * 64
    with measure() as cost, pytest.raises(wb.PlanFormatError, match="claims"):
        wb.load_plan(data)
    assert cost.peak_bytes < SMALL_BYTES


@pytest.mark.parametrize("entry", [{"offset": 2**40}, {"nbytes": 2**40}, {"shape": [2**40], "nbytes": 2**42},
                                   {"offset": -64}, {"shape": [-1]}, {"dtype": "object"}])
def test_weights_claiming_bytes_outside_the_file_are_refused(plan_parts, entry):
    header, blob = plan_parts
    forged = {**header, "weights": [{**header["weights"][0], **entry}]}
    with measure() as cost, pytest.raises(wb.WorkbenchError, match="weight|dtype|inconsistent"):
        wb.load_plan(_reseal(forged, blob))
    assert cost.peak_bytes < SMALL_BYTES


def test_absurdly_nested_plan_header_is_a_plan_format_error(plan_parts):
    header, blob = plan_parts
    import json

    head = ("[" * 100_000 + "]" * 100_000).encode()
    body = plan_format._PREFIX.pack(plan_format.MAGIC, 1, len(head)) + head
    body += b"\0" * (-len(body) % 64) + blob
    import hashlib

    with pytest.raises(wb.PlanFormatError, match="not valid JSON"):
        wb.load_plan(body + hashlib.sha256(body).digest())
    assert json  # the header is JSON; only its depth is absurd


# ------------------------------------------------------------------------ deep and cyclic graphs
def test_a_chain_deeper_than_the_recursion_limit_loads_builds_runs_and_round_trips():
    model = chain_model(5000)
    net = wb.load_onnx(model)
    engine = wb.build(net, wb.BuilderConfig(device="cpu"))
    x = np.array([-1, 2, -3, 4], f32)
    out = wb.load_plan(engine.serialize()).create_execution_context().execute({"x": x})
    np.testing.assert_array_equal(out["t5000"], np.maximum(x, 0))


@pytest.mark.slow
def test_a_100k_layer_chain_takes_linear_time():
    """~0.3 ms per layer to load and build on one core (a quadratic step would take hours)."""
    start = time.perf_counter()
    engine = wb.build(wb.load_onnx(chain_model(100_000)), wb.BuilderConfig(device="cpu"))
    engine.create_execution_context().execute({"x": np.ones(4, f32)})
    assert time.perf_counter() - start < 180


def test_a_cycle_is_named_and_an_unsorted_graph_is_sorted():
    x, y = value_info("x", np.float32, [2]), value_info("b", np.float32, [2])
    cyclic = [helper.make_node("Relu", ["b"], ["a"], name="first"),
              helper.make_node("Relu", ["a"], ["b"], name="second")]
    model = helper.make_model(helper.make_graph(cyclic, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(wb.ParseError, match=r"cycle.*'first'.*'second'"):
        wb.load_onnx(model)
    unsorted = [helper.make_node("Neg", ["a"], ["b"], name="second"),
                helper.make_node("Relu", ["x"], ["a"], name="first")]
    model = helper.make_model(helper.make_graph(unsorted, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    net = wb.load_onnx(model)
    assert [layer.name for layer in net.layers] == ["first", "second"]


def test_a_self_loop_is_a_cycle():
    node = helper.make_node("Add", ["x", "a"], ["a"], name="loop")
    model = helper.make_model(helper.make_graph([node], "g", [value_info("x", np.float32, [2])],
                                                [value_info("a", np.float32, [2])]),
                              opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(wb.ParseError, match="cycle.*'loop'"):
        wb.load_onnx(model)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_deeply_nested_subgraphs_are_refused_cleanly():
    """Graphs in attributes in nodes in graphs, 500 deep (written byte by byte: onnx.helper cannot)."""
    graph = b""
    for _ in range(500):
        attribute = _field(1, b"body") + _varint(20 << 3) + _varint(onnx.AttributeProto.GRAPH) + _field(6, graph)
        graph = _field(1, _field(4, b"Loop") + _field(5, attribute))   # GraphProto.node = NodeProto(op, attr)
    opset = _field(8, _varint(2 << 3) + _varint(18))                    # ModelProto.opset_import
    with measure() as cost, pytest.raises(wb.ParseError, match="not a valid ONNX protobuf"):
        wb.load_onnx(_field(7, graph) + opset)
    assert cost.seconds < QUICK_SECONDS and cost.peak_bytes < SMALL_BYTES


# ------------------------------------------------------------------------------ model files
def test_a_file_over_two_gib_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.onnx"
    with open(path, "wb") as f:
        f.truncate(3 << 30)  # sparse: no disk used, and nothing must read it
    with measure() as cost, pytest.raises(wb.ParseError, match="2 GiB.*external data"):
        wb.load_onnx(path)
    assert cost.seconds < QUICK_SECONDS and cost.peak_bytes < SMALL_BYTES


def test_a_length_field_claiming_gigabytes_is_a_parse_error():
    # field 7 (graph), length-delimited, claiming 2**31 bytes that are not there
    data = bytes([0x3A]) + bytes([0x80, 0x80, 0x80, 0x80, 0x08]) + b"\0" * 16
    with measure() as cost, pytest.raises(wb.ParseError):
        wb.load_onnx(data)
    assert cost.peak_bytes < SMALL_BYTES


def _external_model(tmp_path, location: str, dims=(4,), extra=()) -> "os.PathLike":
    """model.onnx in tmp_path/model/ whose initializer 'w' lives in external file `location`."""
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=list(dims), data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), *extra):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    model = one_node_model("Add", ["x", "w"], {}, {"x": np.ones(4, f32)})
    model.graph.initializer.append(w)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_inside_the_folder_loads(tmp_path):
    path = _external_model(tmp_path, "weights/w.bin")
    (path.parent / "weights").mkdir()
    (path.parent / "weights" / "w.bin").write_bytes(np.arange(4, dtype=f32).tobytes())
    np.testing.assert_array_equal(wb.load_onnx(path).weights["w"], np.arange(4, dtype=f32))


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "weights/../../secret.bin", "", "a\0b"])
def test_external_data_leaving_the_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(b"S" * 16)
    with pytest.raises(wb.ParseError, match="outside the model's folder"):
        wb.load_onnx(_external_model(tmp_path, location))


def test_a_symlink_out_of_the_folder_is_refused_and_one_inside_is_followed(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"S" * 16)
    path = _external_model(tmp_path, "link.bin")
    (path.parent / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(wb.ParseError, match="outside"):
        wb.load_onnx(path)
    (path.parent / "real.bin").write_bytes(np.ones(4, f32).tobytes())
    (path.parent / "link.bin").unlink()
    (path.parent / "link.bin").symlink_to(path.parent / "real.bin")
    assert wb.load_onnx(path).weights["w"].sum() == 4


@pytest.mark.parametrize("extra, needle", [
    ((("length", "64"),), "does not match"),             # more than the dims need
    ((("offset", "-1"),), "does not match"),
    ((("offset", "x"),), "not integers"),
    ((("offset", "12"),), "ends before"),                # the file is 16 bytes
])
def test_external_data_lengths_are_checked(tmp_path, extra, needle):
    path = _external_model(tmp_path, "w.bin", extra=extra)
    (path.parent / "w.bin").write_bytes(b"\0" * 16)
    with pytest.raises(wb.ParseError, match=needle):
        wb.load_onnx(path)


def test_huge_external_tensors_are_refused_before_reading(tmp_path):
    path = _external_model(tmp_path, "w.bin", dims=(2**20, 2**20))
    with open(path.parent / "w.bin", "wb") as f:
        f.truncate(4 << 30)  # sparse
    with measure() as cost, pytest.raises(wb.ResourceLimitError, match="'w'.*TiB"):
        wb.load_onnx(path)
    assert cost.peak_bytes < SMALL_BYTES


@pytest.mark.parametrize("source", ["bytes", "proto"])
def test_external_data_without_a_model_folder_is_never_read_from_the_working_directory(
        tmp_path, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.bin").write_bytes(np.ones(4, f32).tobytes())
    model = onnx.load(_external_model(tmp_path, "w.bin"), load_external_data=False)
    with pytest.raises(wb.ParseError, match="load the model from its file path"):
        wb.load_onnx(model.SerializeToString() if source == "bytes" else model)


def test_initializer_dims_disagreeing_with_its_data_are_a_parse_error():
    w = numpy_helper.from_array(np.ones(4, f32), "w")
    w.dims[0] = 2**40
    model = one_node_model("Add", ["x", "w"], {}, {"x": np.ones(4, f32)})
    model.graph.initializer.append(w)
    with measure() as cost, pytest.raises(wb.ParseError, match="'w'"):
        wb.load_onnx(model)
    assert cost.peak_bytes < SMALL_BYTES


ONNX_ABORT = textwrap.dedent("""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from workbench.baselines import _with_outputs
    consts = [numpy_helper.from_array(np.array([v]), n) for n, v in (("s", -1), ("e", 0), ("a", 0), ("st", -1))]
    graph = helper.make_graph([helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], consts)
    _with_outputs(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), ["y"])
    print("alive")
""")


def test_a_negative_declared_dim_does_not_abort_the_process_in_the_baselines():
    """onnx 1.23's C++ shape inference hits an assertion (SIGABRT) on this one-node model; the baselines
    run it on the user's model to type per-layer outputs, so they must clear such dims first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", ONNX_ABORT], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0 and "alive" in done.stdout, done.stderr[-500:]


# ----------------------------------------------------------------------- loops that grow at run time
def _loop_model(body_nodes, scan_output: bool, trip_count: int, initializers=()):
    """Loop(trip_count) over a state s (float32, any length): body_nodes make s2 (and 'out' to stack)."""
    body_outputs = [value_info("c2", np.bool_, []), value_info("s2", np.float32, None)]
    if scan_output:
        body_outputs.append(value_info("out", np.float32, None))
    body = helper.make_graph([*body_nodes, helper.make_node("Identity", ["c"], ["c2"])], "body",
                             [value_info("i", np.int64, []), value_info("c", np.bool_, []),
                              value_info("s", np.float32, None)], body_outputs, list(initializers))
    outputs = ["y", "stacked"] if scan_output else ["y"]
    node = helper.make_node("Loop", ["n", "", "x"], outputs, body=body, name="the_loop")
    graph = helper.make_graph([node], "g", [value_info("x", np.float32, ["k"])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              [numpy_helper.from_array(np.array(trip_count), "n")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _run_loop(model, length: int):
    engine = wb.build(wb.load_onnx(model), wb.BuilderConfig(device="cpu", profiles=[{"x": ((length,),) * 3}]))
    return engine.create_execution_context().execute({"x": np.ones(length, f32)})


def test_a_loop_state_that_doubles_every_iteration_is_stopped_at_the_limit():
    # 25 doublings of 4 floats would reach 512 MiB: the body's Concat is refused once it passes 16 MiB
    model = _loop_model([helper.make_node("Concat", ["s", "s"], ["s2"], axis=0)], False, 25)
    with measure() as cost, pytest.raises(wb.ResourceLimitError, match=r"the_loop.*Concat.*'s2'"):
        _run_loop(model, 4)
    assert cost.peak_bytes < 4 * LIMIT, cost.peak_bytes


def test_a_loop_stacking_scan_outputs_is_stopped_at_the_limit():
    # 200 iterations of 256 KiB would stack 50 MiB: refused when the stack passes 16 MiB
    one = numpy_helper.from_array(np.ones(1, f32), "one")
    body = [helper.make_node("Add", ["s", "one"], ["s2"]), helper.make_node("Mul", ["s2", "one"], ["out"])]
    with measure() as cost, pytest.raises(wb.ResourceLimitError, match=r"the_loop.*scan output 'out'"):
        _run_loop(_loop_model(body, True, 200, [one]), 1 << 16)
    assert cost.peak_bytes < 4 * LIMIT, cost.peak_bytes


def test_a_loop_whose_state_keeps_its_size_runs_to_the_end():
    one = numpy_helper.from_array(np.ones(1, f32), "one")
    body = [helper.make_node("Add", ["s", "one"], ["s2"]), helper.make_node("Mul", ["s2", "one"], ["out"])]
    out = _run_loop(_loop_model(body, True, 50, [one]), 8)
    np.testing.assert_array_equal(out["y"], np.full(8, 51, f32))
    assert out["stacked"].shape == (50, 8)
