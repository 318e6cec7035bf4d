"""Whole models, end to end on the CPU backend, against onnxruntime at fp32 (relative L2 <= 1e-4).

torch exports come from both exporters (legacy TorchScript-based and dynamo), with a dynamic batch;
the zoo models are written by workbench.zoo. Engines are built for batch 1..4 and run at batch 3.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import workbench as wb
from workbench import zoo

torch_models = pytest.importorskip("tests.models.torch_models")
pytestmark = pytest.mark.slow

TOL = 1e-4


def rel_l2(got, want) -> float:
    want = np.asarray(want, np.float64)
    return float(np.linalg.norm(np.asarray(got, np.float64) - want) / max(np.linalg.norm(want), 1e-30))


def onnxruntime_outputs(path, feeds: dict) -> dict:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def image_batch(batch=3, seed=0):
    return {"input": np.random.default_rng(seed).standard_normal((batch, 3, 224, 224)).astype(np.float32)}


def bert_feeds(model, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, model.vocab, (batch, model.seq), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[0, model.seq // 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def check_against_onnxruntime(path, feeds: dict, max_batch: int = 4) -> wb.Engine:
    engine = wb.build(wb.load_onnx(path), wb.BuilderConfig(device="cpu", max_batch=max_batch))
    got = engine.create_execution_context().execute(feeds)
    want = onnxruntime_outputs(path, feeds)
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        assert rel_l2(got[name], want[name]) <= TOL, (name, rel_l2(got[name], want[name]))
    return engine


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2", "EfficientNetB0"])
def test_torch_exported_cnn_matches_onnxruntime(tmp_path, name, dynamo):
    path = getattr(torch_models, name)().export(tmp_path / f"{name}.onnx", dynamo=dynamo)
    engine = check_against_onnxruntime(path, image_batch())
    assert any(l.op == "FusedConv" for l in engine.layers), "conv + activation should have been fused"


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_torch_exported_bert_with_dynamic_batch_matches_onnxruntime(tmp_path, dynamo):
    model = torch_models.SmallBert()
    path = model.export(tmp_path / "bert.onnx", dynamo=dynamo)
    engine = check_against_onnxruntime(path, bert_feeds(model), max_batch=8)
    assert engine.inputs[0].shape[0] not in (1, 2, 3, 8), "the batch dim stays symbolic"
    for batch in (1, 5):  # other batch sizes inside the profile work on the same engine
        feeds = bert_feeds(model, batch, seed=batch)
        got = engine.create_execution_context().execute(feeds)
        want = onnxruntime_outputs(path, feeds)
        assert all(rel_l2(got[n], want[n]) <= TOL for n in want)


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_zoo_cnn_matches_onnxruntime(tmp_path, name):
    path = getattr(zoo, name)(tmp_path / f"{name}.onnx")
    engine = check_against_onnxruntime(path, image_batch(2, seed=1))
    assert not any(l.op == "BatchNormalization" for l in engine.layers), "BN should fold into the convs"


def test_zoo_bert_matches_onnxruntime_and_fuses(tmp_path):
    path = zoo.bert(tmp_path / "bert.onnx", layers=2, hidden=128, heads=4, seq=32, vocab=1000)
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 1000, (3, 32), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 20:] = 0
    engine = check_against_onnxruntime(path, {"input_ids": ids, "attention_mask": mask})
    ops = {l.op for l in engine.layers}
    assert "LayerNormalization" in ops and "Gelu" in ops or "FusedMatMul" in ops
    assert not {"Shape", "ReduceMean", "Erf"} & ops


def test_digits_engine_accuracy_equals_onnxruntime():
    d = zoo.digits()
    engine = wb.build(wb.load_onnx(d.model), wb.BuilderConfig(device="cpu", max_batch=len(d.x_test)))
    ours = engine.create_execution_context().execute({"input": d.x_test})["logits"].argmax(1)
    theirs = onnxruntime_outputs(d.model, {"input": d.x_test})["logits"].argmax(1)
    assert (ours == d.y_test).mean() == (theirs == d.y_test).mean() == pytest.approx(d.accuracy)
