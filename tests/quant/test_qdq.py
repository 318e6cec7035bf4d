"""Explicit quantization: onnxruntime's quantize_static Q/DQ models, and Q/DQ export that onnxruntime runs."""
from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import workbench as wb
from workbench.errors import UnsupportedError
from workbench.parsers.onnx_export import to_onnx

from .helpers import needs_kernels

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")
pytestmark = needs_kernels("Conv", "Gemm", "MatMul", "GlobalAveragePool", "Flatten", "QuantizeLinear",
                           "DequantizeLinear", "Relu")
RNG = np.random.default_rng(1)


def small_model(seed: int = 0) -> onnx.ModelProto:
    """Conv(bias) -> Relu -> Conv(stride 2) -> Relu -> GAP -> Flatten -> Gemm(transB) -> MatMul."""
    rng = np.random.default_rng(seed)

    def he(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * (2 / np.prod(shape[1:])) ** 0.5)
                                       .astype(np.float32), name)

    def small(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)

    inits = [he("w1", 8, 3, 3, 3), small("b1", 8), he("w2", 16, 8, 3, 3), small("b2", 16), he("fc", 10, 16),
             small("fcb", 10), numpy_helper.from_array((rng.standard_normal((10, 5)) * 0.3).astype(np.float32), "mm")]
    node = helper.make_node
    nodes = [node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             node("Relu", ["c1"], ["r1"], name="relu1"),
             node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1], name="conv2"),
             node("Relu", ["c2"], ["r2"], name="relu2"),
             node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
             node("Flatten", ["g"], ["f"], name="flat"),
             node("Gemm", ["f", "fc", "fcb"], ["h"], transB=1, name="fc"),
             node("MatMul", ["h", "mm"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Reader(quantization.CalibrationDataReader):
    def __init__(self, batches):
        self.batches = iter(batches)

    def get_next(self):
        return next(self.batches, None)


def ort_run(path_or_model, feeds):
    model = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def fp32_elsewhere(engine) -> dict:
    """layer_precisions running every non-quantized layer in fp32, as onnxruntime does."""
    return {l.name: "fp32" for l in engine.network.layers if engine.precisions[l.name] == "fp16"}


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("activations", ["QUInt8", "QInt8"])
def test_quantize_static_model_matches_onnxruntime(tmp_path, per_channel, activations):
    onnx.save(small_model(), tmp_path / "m.onnx")
    calib = [{"x": RNG.standard_normal((4, 3, 16, 16)).astype(np.float32)} for _ in range(3)]
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static advises pre-processing on every call
    quantization.quantize_static(str(tmp_path / "m.onnx"), str(tmp_path / "q.onnx"), Reader(calib),
                                 quant_format=quantization.QuantFormat.QDQ, per_channel=per_channel,
                                 activation_type=getattr(quantization.QuantType, activations),
                                 weight_type=quantization.QuantType.QInt8)
    x = RNG.standard_normal((8, 3, 16, 16)).astype(np.float32)
    want = ort_run(tmp_path / "q.onnx", {"x": x})
    net = wb.load_onnx(tmp_path / "q.onnx")
    engine = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", max_batch=8))
    assert engine.report["quantization"]["explicit"] == 4
    assert [engine.precisions[n] for n in ("conv1", "conv2", "fc", "mm")] == ["int8"] * 4
    assert engine.report["quantization"]["int8_tensors"] == 2  # conv1 -> conv2 and fc -> mm move int8/uint8
    y_scale = float(next(numpy_helper.to_array(i) for i in onnx.load(tmp_path / "q.onnx").graph.initializer
                         if i.name == "y_scale"))
    got = engine.create_execution_context().execute({"x": x})["y"]
    # fp16 elsewhere (the int8 build's fallback) flips a few roundings: a step or two of the output grid
    assert np.abs(got - want).max() <= 2.01 * y_scale and np.abs(got - want).mean() <= 0.25 * y_scale
    exact = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", max_batch=8,
                                           layer_precisions=fp32_elsewhere(engine)))
    np.testing.assert_array_equal(exact.create_execution_context().execute({"x": x})["y"], want)


def test_export_runs_in_onnxruntime_and_reads_back(tmp_path):
    from workbench.zoo import digits

    d = digits()
    net = wb.load_onnx(d.model)
    cal = wb.quant.EntropyCalibrator(d.x_calib, batch_size=64, progress=False)
    engine = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal, max_batch=512))
    ours = engine.create_execution_context().execute({"input": d.x_test})["logits"]
    model = wb.quant.export_qdq(net, cal.scales, tmp_path / "digits.qdq.onnx")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") == 4 and ops.count("DequantizeLinear") == 4 + 4 + 2  # x, W, B
    theirs = ort_run(tmp_path / "digits.qdq.onnx", {"input": d.x_test})
    # BN is folded before quantization in the engine, after it in the file: equal up to rounding flips
    assert np.mean(theirs.argmax(1) == ours.argmax(1)) > 0.99
    assert np.abs(theirs - ours).max() < 0.02 * np.abs(ours).max()
    back = wb.load_onnx(tmp_path / "digits.qdq.onnx")
    explicit = wb.build(back, wb.BuilderConfig(device="cpu", precision="int8", max_batch=512))
    explicit = wb.build(back, wb.BuilderConfig(device="cpu", precision="int8", max_batch=512,
                                               layer_precisions=fp32_elsewhere(explicit)))
    np.testing.assert_array_equal(explicit.create_execution_context().execute({"input": d.x_test})["logits"], theirs)


def test_export_refuses_workbench_ops():
    from workbench.zoo import digits

    d = digits()
    cal = wb.quant.MinMaxCalibrator(d.x_calib, progress=False)
    engine = wb.build(wb.load_onnx(d.model), wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal,
                                                             max_batch=8))
    with pytest.raises(UnsupportedError, match="export the network as parsed"):
        wb.quant.export_qdq(engine.network, cal.scales, "/nonexistent/never-written.onnx")


def test_onnx_writer_round_trip():
    model = small_model()
    net = wb.load_onnx(model)
    net.layer("relu1").attrs["_opset"] = 17  # hidden parser attributes never reach the file
    out = to_onnx(net)
    assert all(not a.name.startswith("_") for n in out.graph.node for a in n.attribute)
    assert [d.dim_param or d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim] == ["n", 3, 16, 16]
    x = RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(ort_run(out, {"x": x}), ort_run(model, {"x": x}))


@pytest.mark.parametrize("opset", [12, 17])
def test_export_of_a_hand_built_network(tmp_path, opset):
    from .helpers import mlp

    net = mlp()
    net.opset = opset
    x = RNG.standard_normal((16, 32)).astype(np.float32)
    cal = wb.quant.MinMaxCalibrator([{"x": x}], progress=False)
    engine = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal, max_batch=16,
                                            layer_precisions={"relu": "fp32"}))
    model = wb.quant.export_qdq(net, cal.scales, tmp_path / "mlp.onnx")
    axes = [a.i for n in model.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute if a.name == "axis"]
    assert axes == ([] if opset < 13 else [0, 0, 1])  # fc weight, fc bias, head weight (K, N) per column
    (name,) = net.outputs
    ours = engine.create_execution_context().execute({"x": x})[name]
    theirs = ort_run(tmp_path / "mlp.onnx", {"x": x})
    if opset >= 13:  # the same per-channel recipe: equal up to float summation order
        np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4 * np.abs(ours).max())
    else:
        assert np.abs(theirs - ours).max() < 0.05 * np.abs(ours).max()
