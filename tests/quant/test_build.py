"""INT8/FP8 builds end to end on the shipped digits CNN: accuracy, report, cache, cancel, bad data."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.errors import CancelledError, ConfigError, ShapeError
from workbench.zoo import digits

from .helpers import needs_kernels

pytestmark = needs_kernels("Conv", "BatchNormalization", "MaxPool", "GlobalAveragePool", "Flatten",
                           "Gemm", "Relu")
MATRIX = ("QLinearConvFused", "QGemm")


@pytest.fixture(scope="module")
def d():
    return digits()


@pytest.fixture(scope="module")
def net(d):
    return wb.load_onnx(d.model)


@pytest.fixture(scope="module")
def fp32(net, d):
    engine = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=512))
    return engine.create_execution_context().execute({"input": d.x_test})["logits"]


def build(net, precision="int8", **kw):
    return wb.build(net, wb.BuilderConfig(device="cpu", precision=precision, max_batch=512, **kw))


def logits(engine, d):
    return engine.create_execution_context().execute({"input": d.x_test})["logits"]


def top1(y, d):
    return 100.0 * np.mean(y.argmax(1) == d.y_test)


def test_int8_entropy_keeps_top1_within_half_a_point(net, d, fp32):
    cal = wb.quant.EntropyCalibrator(d.x_calib, batch_size=32, progress=False)
    engine = build(net, calibrator=cal)
    assert top1(logits(engine, d), d) >= top1(fp32, d) - 0.5
    matrix = [l.name for l in engine.network.layers if l.op in MATRIX]
    assert len(matrix) == 4 and all(engine.precisions[n] == "int8" for n in matrix)
    # Conv_0 -> Conv_1 -> MaxPool -> Conv_2 moves int8; the pool pools grid integers (exact, "fp32")
    pools = [l for l in engine.network.layers if l.op == "MaxPool"]
    assert engine.report["quantization"]["int8_tensors"] == 3, engine.report["quantization"]
    others = {engine.precisions[l.name] for l in engine.network.layers if l.op not in MATRIX}
    assert others == {"fp16", "fp32"} and {engine.precisions[l.name] for l in pools} == {"fp32"}
    assert {r["precision"] for r in engine.layer_table()} == {"int8", "fp16", "fp32"}
    assert engine.report["quantization"]["calibrator"] == "EntropyCalibrator"
    assert "calibrate" in engine.report["stages"]


def test_fp8_build(net, d, fp32):
    engine = build(net, "fp8", calibrator=wb.quant.MinMaxCalibrator(d.x_calib, progress=False))
    assert {engine.precisions[l.name] for l in engine.network.layers if l.op in MATRIX} == {"fp8"}
    y = logits(engine, d)
    cos = np.sum(y * fp32, 1) / np.linalg.norm(y, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cos.mean() > 0.99 and top1(y, d) >= top1(fp32, d) - 2.0  # e4m3 keeps 3 mantissa bits


def test_cache_is_written_then_reused_and_plan_round_trips(net, d, tmp_path):
    path = tmp_path / "digits.calib"
    first = build(net, calibrator=wb.quant.EntropyCalibrator(d.x_calib, cache=path, progress=False))
    assert path.is_file() and first.report["quantization"]["cache"]["reused"] is False
    again = build(net, calibrator=wb.quant.EntropyCalibrator(None, cache=path))
    assert again.report["quantization"]["cache"]["reused"] is True
    np.testing.assert_array_equal(logits(first, d), logits(again, d))
    first.save(tmp_path / "digits.plan")
    loaded = wb.load_plan(tmp_path / "digits.plan")
    np.testing.assert_array_equal(logits(loaded, d), logits(first, d))
    assert loaded.precisions == first.precisions


def test_cancelled_build_leaves_no_cache(net, d, tmp_path):
    path = tmp_path / "digits.calib"
    seen = []
    cal = wb.quant.EntropyCalibrator(d.x_calib, batch_size=32, cache=path, progress=False)
    cancel = lambda: sum(stage == "calibrate" for stage in seen) > 3  # noqa: E731 - mid-calibration
    with pytest.raises(CancelledError):
        wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal, max_batch=512),
                 progress=lambda stage, f: seen.append(stage), cancel=cancel)
    assert "profiles" not in seen and list(tmp_path.iterdir()) == []


def test_bad_data_fails_before_any_work(net, d):
    stages = []
    bad = [{"input": d.x_calib[:8]}, {"input": d.x_calib[:8].astype(np.float64)}]
    cfg = wb.BuilderConfig(device="cpu", precision="int8", max_batch=8,
                           calibrator=wb.quant.EntropyCalibrator(bad, progress=False))
    with pytest.raises(ShapeError, match="calibration batch 1, input 'input': dtype float64"):
        wb.build(net, cfg, progress=lambda stage, f: stages.append(stage))
    assert stages == ["validate"]


def test_layer_precisions_keep_layers_in_float(net, d):
    cal = wb.quant.EntropyCalibrator(d.x_calib, progress=False)
    engine = build(net, calibrator=cal, layer_precisions={"Gemm_0": "fp32"})
    assert engine.network.layer("Gemm_0").op != "QGemm" and engine.precisions["Gemm_0"] == "fp32"
    assert sum(l.op in MATRIX for l in engine.network.layers) == 3


def test_int8_without_calibrator_falls_back_and_says_so(net, d, fp32):
    engine = build(net)
    assert not any(l.op in MATRIX for l in engine.network.layers)
    assert "no calibrator" in engine.report["quantization"]["note"]
    assert top1(logits(engine, d), d) >= top1(fp32, d) - 0.5


def test_calibrator_must_be_a_workbench_one(net, d):
    with pytest.raises(ConfigError, match="calibrator must be a workbench calibrator"):
        build(net, calibrator=d.x_calib)


def test_missing_cache_and_no_data_is_a_config_error(net, tmp_path):
    cal = wb.quant.EntropyCalibrator(None, cache=tmp_path / "none.calib")
    with pytest.raises(ConfigError, match="does not exist yet"):
        build(net, calibrator=cal)
