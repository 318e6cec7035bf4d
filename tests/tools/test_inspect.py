import json

import numpy as np
import pytest

from workbench.ir import Layer
from workbench.tools.flops import layer_flops
from workbench.tools.inspect import inspect_engine

from .models import add_relu_model, engine_of


@pytest.fixture(scope="module")
def engine():
    return engine_of(add_relu_model(width=2048, depth=2), max_batch=16)


def test_analysis_rows(engine):
    frame = engine.inspect().to_dataframe()
    assert list(frame["name"]) == ["add1", "relu1", "add2", "relu2"]
    assert list(frame["type"]) == ["Add", "Relu", "Add", "Relu"]
    assert frame["output_shapes"][0] == [(16, 2048)]  # at the profile's opt shape, not symbolic
    assert (frame["flops"] == 16 * 2048).all()
    assert list(frame["weight_bytes"]) == [2048 * 4, 0, 2048 * 4, 0]
    assert frame["bytes"][0] == 2 * 16 * 2048 * 4 + 2048 * 4
    assert frame["time_ms"].isna().all()  # analysis only: nothing ran
    assert frame["precision"].eq("fp32").all() and frame["tactic"].eq("numpy").all()


def test_summary_and_json(engine):
    report = engine.inspect()
    s = report.summary
    assert s["layers"] == 4 and s["flops"] == 4 * 16 * 2048 and s["weight_bytes"] == 2 * 2048 * 4
    data = json.loads(report.to_json())
    assert data["Bindings"] == ["x", "y"]
    layer = data["Layers"][0]
    assert layer["Name"] == "add1" and layer["LayerType"] == "Add"
    assert layer["Inputs"][0] == {"Name": "x", "Dimensions": [16, 2048], "Format/Datatype": "float32"}
    assert layer["Weights"][0]["Name"] == "w1"
    assert "4 layers" in str(report)


def test_works_on_a_loaded_plan(engine, tmp_path):
    path = tmp_path / "m.plan"
    engine.save(path)
    frame = inspect_engine(str(path)).to_dataframe()
    assert len(frame) == 4 and (frame["flops"] == 16 * 2048).all()


def test_low_precision_shows_in_dtypes():
    frame = engine_of(add_relu_model(), precision="fp16").inspect().to_dataframe()
    assert frame["precision"].eq("fp16").all()
    assert frame["out_dtypes"][0] == ["float16"] and frame["out_dtypes"][3] == ["float32"]  # graph output stays


def test_profile_times_sum_near_total():
    # big enough (~1 ms) that the context's fixed overhead outside the layers is small
    report = inspect_engine(engine_of(add_relu_model(width=8192), max_batch=32), profile=True, iterations=20)
    frame = report.to_dataframe()
    assert (frame["time_ms"] > 0).all()
    assert frame["share"].sum() == pytest.approx(1.0)
    total = report.summary["total_time_ms"]
    assert frame["time_ms"].sum() == pytest.approx(total, rel=0.2)


def _layer(op, **attrs):
    return Layer("l", op, [], [], attrs)


@pytest.mark.parametrize("op, ins, outs, attrs, flops", [
    ("MatMul", [(2, 3, 4), (4, 5)], [(2, 3, 5)], {}, 2 * 30 * 4),
    ("Gemm", [(3, 4), (5, 4), (5,)], [(3, 5)], {"transB": 1}, 2 * 15 * 4 + 15),
    ("Gemm", [(4, 3), (4, 5)], [(3, 5)], {"transA": 1}, 2 * 15 * 4),
    ("Conv", [(1, 8, 10, 10), (16, 4, 3, 3)], [(1, 16, 8, 8)], {"group": 2}, 2 * 1024 * 36),
    ("MaxPool", [(1, 2, 8, 8)], [(1, 2, 4, 4)], {"kernel_shape": [2, 2]}, 32 * 4),
    ("Softmax", [(2, 10)], [(2, 10)], {}, 5 * 20),
    ("Reshape", [(2, 10), (2,)], [(20,)], {}, 0),
    ("Relu", [("batch", 10)], [("batch", 10)], {}, None),
])
def test_flops_rules(op, ins, outs, attrs, flops):
    assert layer_flops(_layer(op, **attrs), ins, outs) == flops


def test_inspect_needs_no_kernels_to_analyse(engine, monkeypatch):
    from workbench.runtime.context import ExecutionContext

    monkeypatch.setattr(ExecutionContext, "execute", lambda *a, **k: pytest.fail("inspection ran the engine"))
    assert len(inspect_engine(engine).layers) == 4
    assert np.isfinite(engine.inspect().summary["flops"])
