import json

import numpy as np
import pytest

from workbench.baselines import OnnxRuntime, Reference
from workbench.errors import ConfigError, UnsupportedError, WorkbenchError
from workbench.tools.compare import compare
from workbench.tools.runners import EngineRunner

from .models import add_relu_model, engine_of, tamper


@pytest.fixture(scope="module")
def model():
    return add_relu_model(width=32, depth=3)


def test_engine_matches_onnxruntime_and_reference(model):
    engine = engine_of(model)
    for baseline in (OnnxRuntime(model), Reference(model)):
        result = compare(engine, baseline, batch=4, seed=0)
        assert result and result.passed
        s = result.outputs["y"]
        assert s["max_abs"] <= 1e-6 and s["cosine"] == pytest.approx(1.0) and s["mismatches"] == 0


def test_result_forms(model):
    result = compare(engine_of(model), model, batch=4)
    frame = result.to_dataframe()
    assert list(frame["output"]) == ["y"] and bool(frame["passed"][0])
    assert "hist_counts" not in frame
    counts, edges = result.histogram("y")
    assert counts.sum() == 4 * 32 and len(edges) == len(counts) + 1
    assert json.loads(result.to_json())["passed"] is True
    assert result.summary().startswith("PASSED")


def test_tampered_engine_fails_and_per_layer_names_the_broken_layer(model):
    engine = tamper(engine_of(model), "w2")
    for baseline in (Reference(model), OnnxRuntime(model)):
        result = compare(engine, baseline, batch=4, per_layer=True)
        assert not result
        assert result.first_bad_layer == "add2"
        rows = result.per_layer_dataframe()
        assert list(rows["layer"][:2]) == ["add1", "relu1"] and rows["passed"][:2].all()
        assert "first layer out of tolerance: add2" in result.summary()


def test_precision_loss_is_measured_not_hidden(model):
    result = compare(engine_of(model, precision="fp16"), model, batch=8, atol=0, rtol=0)
    s = result.outputs["y"]
    assert not result and 0 < s["max_abs"] < 1e-2 and s["snr_db"] > 40
    assert bool(compare(engine_of(model, precision="fp16"), model, batch=8, atol=1e-2, rtol=1e-2))


def test_dataset_with_labels_gives_accuracy(model):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 32)).astype(np.float32)
    y = Reference(model).infer({"x": x})["y"].argmax(-1)
    y[:5] = (y[:5] + 1) % 32  # five wrong labels: 75 % for both
    result = compare(engine_of(model), model, dataset=(x, y), batch=8)
    assert result.batches == 3 and result.samples == 20
    assert result.accuracy["runner"] == pytest.approx(0.75) and result.accuracy["delta"] == 0
    assert result.outputs["y"]["top1"] == 1.0


def test_output_names_must_match(model):
    other = add_relu_model(width=32, depth=3, output="logits")
    with pytest.raises(WorkbenchError, match="output_map"):
        compare(engine_of(model), other, batch=2)
    assert compare(engine_of(model), other, batch=2, output_map={"y": "logits"})


def test_bad_requests(model):
    engine = engine_of(model)
    with pytest.raises(WorkbenchError, match="empty"):
        compare(engine, model, dataset=[])
    with pytest.raises(ConfigError, match="not both"):
        compare(engine, model, inputs={"x": np.ones((1, 32), np.float32)}, dataset=[])
    with pytest.raises(UnsupportedError, match="per_layer"):
        compare(OnnxRuntime(model), Reference(model), batch=2, per_layer=True)
    with pytest.raises(WorkbenchError, match="baseline"):
        compare(engine, None)


def test_default_baseline_is_the_source_onnx_file(model, tmp_path):
    import workbench as wb

    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    engine = wb.build(wb.load_onnx(str(path)), wb.BuilderConfig(device="cpu", max_batch=2))
    assert compare(EngineRunner(engine)).baseline == "onnxruntime-cpu"
