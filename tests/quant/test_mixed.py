"""Sensitivity per layer and the search for the fastest assignment within an accuracy budget."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.errors import ConfigError
from workbench.quant.mixed import cosine, top1

from .helpers import needs_kernels

pytestmark = needs_kernels("Conv", "BatchNormalization", "MaxPool", "GlobalAveragePool", "Flatten",
                           "Gemm", "Relu")


@pytest.fixture(scope="module")
def setup():
    from workbench.zoo import digits

    d = digits()
    net = wb.load_onnx(d.model)
    return d, net, wb.quant.EntropyCalibrator(d.x_calib, progress=False)


def test_metrics():
    ref = {"y": np.array([[1.0, 2.0, 3.0], [3.0, 0.0, 0.0]])}
    assert cosine(ref, ref) == pytest.approx(1.0)
    assert cosine({"y": -ref["y"]}, ref) == pytest.approx(-1.0)
    assert top1()({"y": ref["y"][:, ::-1]}, ref) == 0.0
    assert top1(labels=[2, 1])(ref, ref) == 50.0
    with pytest.raises(ConfigError, match="3 labels"):
        top1(labels=[0, 1, 2])(ref, ref)


def test_sensitivity_table(setup):
    d, net, cal = setup
    df = wb.quant.sensitivity(net, {"input": d.x_test}, "top1", labels=d.y_test, calibrator=cal)
    assert list(df.columns) == ["layer", "op", "flops", "score", "score_drop"]
    assert sorted(df.layer) == ["Conv_0", "Conv_1", "Conv_2", "Gemm_0"]
    assert list(df.score_drop) == sorted(df.score_drop, reverse=True)
    assert df.attrs["fp32"] == pytest.approx(100 * d.accuracy) and df.attrs["metric"] == "top1"
    assert (df.flops > 0).all() and df.set_index("layer").flops["Conv_1"] > df.set_index("layer").flops["Gemm_0"]


def test_search_finds_an_assignment_within_a_tight_budget(setup):
    d, net, cal = setup
    result = wb.quant.search(net, {"input": d.x_test}, "cosine", budget=0.9999, calibrator=cal)
    assert result.met and result.score >= 0.9999 and result.floor == 0.9999
    assert 0 < len(result.quantized) < 4  # all four in int8 misses this budget, none is too cautious
    trail = result.trail
    assert trail.loc[trail.action == "all quantized", "score"].iloc[0] < 0.9999
    engine = wb.build(net, wb.BuilderConfig(device="cpu", precision="int8", calibrator=cal, max_batch=512,
                                            layer_precisions=result.layer_precisions))
    y = engine.create_execution_context().execute({"input": d.x_test})["logits"]
    ref = wb.build(net, wb.BuilderConfig(device="cpu", max_batch=512)).create_execution_context() \
        .execute({"input": d.x_test})["logits"]
    assert cosine({"y": y}, {"y": ref}) == pytest.approx(result.score)
    assert sorted(n for n, p in result.layer_precisions.items() if p == "int8") == sorted(result.quantized)


def test_search_with_a_loose_budget_quantizes_everything(setup):
    d, net, cal = setup
    result = wb.quant.search(net, {"input": d.x_test}, "top1", budget=0.5, labels=d.y_test, calibrator=cal)
    assert result.met and len(result.quantized) == 4 and result.int8_flops == pytest.approx(1.0)


def test_search_with_a_callable_metric_and_budget_dict(setup):
    d, net, cal = setup

    def neg_max_error(outputs, reference):
        return -float(np.abs(outputs["logits"] - reference["logits"]).max())

    result = wb.quant.search(net, {"input": d.x_test[:64]}, neg_max_error, budget={"max_drop": 1e9}, calibrator=cal)
    assert result.met and len(result.quantized) == 4
    with pytest.raises(ConfigError, match="unknown metric"):
        wb.quant.search(net, {"input": d.x_test[:8]}, "f1", calibrator=cal)
    with pytest.raises(ConfigError, match="budget"):
        wb.quant.search(net, {"input": d.x_test[:8]}, "cosine", budget="tight", calibrator=cal)
