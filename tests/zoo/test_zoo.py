"""The zoo: written models are valid ONNX, run in onnxruntime with sane outputs,
keep the patterns the passes need, and the shipped digits model scores what it claims."""

import collections
import subprocess
import sys

import numpy as np
import onnx
import pytest

from workbench.errors import ConfigError
from workbench.zoo import bert, digits, mobilenet_v2, resnet50

ort = pytest.importorskip("onnxruntime")

SMALL_BERT = dict(layers=2, hidden=64, heads=4, seq=16, vocab=500)


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def op_histogram(path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def assert_sane(y: np.ndarray) -> None:
    """Finite, O(1)-ish, and different from sample to sample."""
    assert np.isfinite(y).all()
    assert 1e-3 < y.std() < 100
    assert np.abs(y[0] - y[1]).max() > 1e-4


@pytest.fixture(scope="module")
def cnn_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    return {f.__name__: f(folder / f"{f.__name__}.onnx") for f in (resnet50, mobilenet_v2)}


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory):
    return bert(tmp_path_factory.mktemp("zoo") / "bert.onnx", **SMALL_BERT)


def bert_inputs(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, SMALL_BERT["vocab"], (batch, SMALL_BERT["seq"]), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[0, SMALL_BERT["seq"] // 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


# ---- image models ----------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_cnn_is_valid_and_runs_with_dynamic_batch(cnn_paths, name):
    path = cnn_paths[name]
    onnx.checker.check_model(str(path), full_check=True)
    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224), dtype=np.float32)
    sess = session(path)
    y = sess.run(["logits"], {"input": x})[0]
    assert y.shape == (3, 1000)
    assert_sane(y)
    # Samples are independent: running one alone gives the same logits.
    np.testing.assert_allclose(sess.run(["logits"], {"input": x[1:2]})[0], y[1:2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, convs, bns, clips", [("resnet50", 53, 53, 0), ("mobilenet_v2", 52, 52, 35)])
def test_cnn_topology(cnn_paths, name, convs, bns, clips):
    hist = op_histogram(cnn_paths[name])
    assert (hist["Conv"], hist["BatchNormalization"], hist["Clip"]) == (convs, bns, clips)
    assert hist["Gemm"] == hist["GlobalAveragePool"] == hist["Flatten"] == 1


@pytest.mark.parametrize("name, count", [("resnet50", 25_557_032), ("mobilenet_v2", 3_504_872)])
def test_parameter_count_is_torchvisions(cnn_paths, name, count):
    model = onnx.load(str(cnn_paths[name]))
    # BN running statistics are buffers, not parameters, in torch's count.
    stats = {name for n in model.graph.node if n.op_type == "BatchNormalization" for name in n.input[3:]}
    params = sum(np.prod(t.dims) for t in model.graph.initializer if t.name not in stats)
    assert params == count


def test_builders_are_seeded(tmp_path):
    a = mobilenet_v2(tmp_path / "a.onnx", num_classes=10, seed=1).read_bytes()
    assert a == mobilenet_v2(tmp_path / "b.onnx", num_classes=10, seed=1).read_bytes()
    assert a != mobilenet_v2(tmp_path / "c.onnx", num_classes=10, seed=2).read_bytes()


def test_fixed_batch_and_classes(tmp_path):
    model = onnx.load(str(resnet50(tmp_path / "r.onnx", batch=4, num_classes=10)))
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [4, 10]


@pytest.mark.parametrize("opset", [12, 99])
def test_unsupported_opset_is_a_config_error(tmp_path, opset):
    with pytest.raises(ConfigError, match="opset"):
        resnet50(tmp_path / "r.onnx", opset=opset)


# ---- BERT ------------------------------------------------------------------


def test_bert_runs_with_sane_outputs(bert_path):
    onnx.checker.check_model(str(bert_path), full_check=True)
    hidden, pooled = session(bert_path).run(["last_hidden_state", "pooler_output"], bert_inputs(3))
    assert hidden.shape == (3, SMALL_BERT["seq"], SMALL_BERT["hidden"])
    assert pooled.shape == (3, SMALL_BERT["hidden"])
    assert_sane(hidden)
    assert_sane(pooled)
    assert np.abs(pooled).max() <= 1.0  # tanh


def test_bert_mask_hides_masked_tokens(bert_path):
    sess = session(bert_path)
    inputs = bert_inputs(2)
    before = sess.run(["last_hidden_state"], inputs)[0]
    inputs["input_ids"][0, -1] = (inputs["input_ids"][0, -1] + 1) % SMALL_BERT["vocab"]  # a masked position
    after = sess.run(["last_hidden_state"], inputs)[0]
    half = SMALL_BERT["seq"] // 2
    np.testing.assert_allclose(after[0, :half], before[0, :half], rtol=1e-5, atol=1e-5)
    assert not np.allclose(after[0, -1], before[0, -1])


def test_bert_is_written_unfused(bert_path):
    hist = op_histogram(bert_path)
    layers = SMALL_BERT["layers"]
    n_ln = 2 * layers + 1
    assert "LayerNormalization" not in hist and "Gelu" not in hist
    assert (hist["ReduceMean"], hist["Pow"], hist["Sqrt"]) == (2 * n_ln, n_ln, n_ln)
    assert (hist["Erf"], hist["Softmax"], hist["MatMul"]) == (layers, layers, 8 * layers)
    assert hist["Shape"] > 0 and hist["Concat"] == 4 * layers


def test_bert_opset18_moves_reduce_axes_to_an_input(tmp_path):
    model = onnx.load(str(bert(tmp_path / "b.onnx", opset=18, **SMALL_BERT)))
    reduces = [n for n in model.graph.node if n.op_type == "ReduceMean"]
    assert all(len(n.input) == 2 and not any(a.name == "axes" for a in n.attribute) for n in reduces)


# ---- digits ----------------------------------------------------------------


def test_digits_data_shapes():
    d = digits()
    assert d.x_test.dtype == d.x_calib.dtype == np.float32 and d.y_test.dtype == np.int64
    assert d.x_test.shape[1:] == d.x_calib.shape[1:] == (1, 8, 8)
    assert len(d.x_test) == len(d.y_test) and len(d.x_calib) > 0
    assert d.labels == tuple(str(i) for i in range(10))
    assert set(np.unique(d.y_test)) == set(range(10))
    assert d.model.is_file() and d.accuracy >= 0.95


def test_digits_accuracy_matches_the_recorded_one():
    d = digits()
    onnx.checker.check_model(str(d.model), full_check=True)
    logits = session(d.model).run(["logits"], {"input": d.x_test})[0]
    assert logits.shape == (len(d.x_test), 10)
    assert float((logits.argmax(1) == d.y_test).mean()) == d.accuracy


def test_digits_model_keeps_batchnorm():
    hist = op_histogram(digits().model)
    assert (hist["Conv"], hist["BatchNormalization"]) == (3, 2)


def test_importing_the_zoo_pulls_in_neither_torch_nor_sklearn():
    code = "import sys, workbench.zoo; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- torch reference models (both exporters) ----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "efficientnet_b0", "small_bert"])
def test_torch_export_matches_torch(tmp_path, name, dynamo):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from tests.models.torch_models import MODELS

    model = MODELS[name]()
    path = model.export(tmp_path / f"{name}.onnx", dynamo=dynamo)
    onnx.checker.check_model(str(path), full_check=True)
    args = model.example_inputs(3)  # exported at batch 2: batch must be dynamic
    got = session(path).run(list(model.output_names), {n: a.numpy() for n, a in zip(model.input_names, args)})
    with torch.no_grad():
        want = model(*args)
    for g, w in zip(got, want if isinstance(want, tuple) else (want,)):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-3, atol=1e-3)
