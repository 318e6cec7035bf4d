import numpy as np
import pytest

import workbench as wb
from workbench.baselines import OnnxRuntime, Reference, Torch, default_baseline
from workbench.errors import ExecutionError, ShapeError, WorkbenchError
from workbench.tools.inputs import TOKEN_ID_LIMIT, iter_dataset, make_inputs, random_tensor
from workbench.tools.runners import EngineRunner, as_runner

from .models import add_relu_model, engine_of


@pytest.fixture(scope="module")
def model():
    return add_relu_model()


def test_engine_and_baselines_agree(model):
    x = {"x": np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)}
    outs = [r.infer(x)["y"] for r in (EngineRunner(engine_of(model)), OnnxRuntime(model), Reference(model))]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6)
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-6)


def test_infer_records_time_and_checks_feeds(model):
    runner = OnnxRuntime(model)
    runner.infer({"x": np.ones((2, 64), np.float32)})
    assert runner.last_inference_time > 0
    with pytest.raises(ExecutionError, match="missing"):
        runner.infer({"z": np.ones((2, 64), np.float32)})
    with pytest.raises(ExecutionError, match="float64"):
        runner.infer({"x": np.ones((2, 64))})


def test_as_runner_accepts_plans_and_rejects_models_as_engines(model, tmp_path):
    engine = engine_of(model)
    path = tmp_path / "m.plan"
    engine.save(path)
    assert isinstance(as_runner(path), EngineRunner)
    assert isinstance(as_runner(engine.serialize()), EngineRunner)
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    with pytest.raises(WorkbenchError, match="build it first"):
        as_runner(str(onnx_path))
    assert isinstance(as_runner(str(onnx_path), role="baseline"), OnnxRuntime)
    with pytest.raises(WorkbenchError, match="no such file"):
        as_runner(tmp_path / "missing.plan")


def test_default_baseline_is_torch_for_modules_else_onnxruntime(model):
    torch = pytest.importorskip("torch")
    assert isinstance(default_baseline(model), OnnxRuntime)
    assert isinstance(default_baseline(torch.nn.ReLU()), Torch)


def test_torch_baseline_matches_engine(model):
    torch = pytest.importorskip("torch")
    from onnx import numpy_helper

    w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}

    class AddRelu(torch.nn.Module):
        def forward(self, x):
            return torch.relu(torch.relu(x + w["w1"]) + w["w2"])

    runner = Torch(AddRelu(), device="cpu", input_names=["x"], output_names=["y"],
                   example_inputs={"x": np.ones((1, 64), np.float32)})
    feeds = make_inputs(runner, batch=4, seed=0)
    assert feeds["x"].shape == (4, 64)
    np.testing.assert_allclose(runner.infer(feeds)["y"], EngineRunner(engine_of(model)).infer(feeds)["y"], rtol=1e-6)


def test_random_inputs_are_sensible():
    rng = np.random.default_rng(0)
    ids = random_tensor("input_ids", "int64", (4, 16), rng)
    assert ids.dtype == np.int64 and ids.min() >= 1 and ids.max() < TOKEN_ID_LIMIT
    assert (random_tensor("attention_mask", "int64", (4, 16), rng) == 1).all()
    assert set(np.unique(random_tensor("token_type_ids", "int32", (4, 64), rng))) <= {0, 1}
    x = random_tensor("x", "float16", (8, 8), rng)
    assert x.dtype == np.float16 and np.count_nonzero(x) == x.size


def test_make_inputs_uses_batch_and_refuses_a_fixed_batch(model):
    assert make_inputs(EngineRunner(engine_of(model)))["x"].shape == (8, 64)  # profile opt shape
    assert make_inputs(OnnxRuntime(model), batch=3)["x"].shape == (3, 64)
    fixed = OnnxRuntime(add_relu_model(batch=2))
    with pytest.raises(ShapeError, match="fixed batch"):
        make_inputs(fixed, batch=4)


def test_iter_dataset_forms_and_empty():
    x, y = np.ones((10, 4), np.float32), np.arange(10)
    assert [f["x"].shape[0] for f, _ in iter_dataset((x, y), ["x"], 4)] == [4, 4, 2]
    assert list(iter_dataset({"x": x}, ["x"]))[0][1] is None
    with pytest.raises(WorkbenchError, match="empty"):
        list(iter_dataset((x[:0], y[:0]), ["x"]))
    with pytest.raises(WorkbenchError, match="empty"):
        list(iter_dataset([], ["x"]))
    with pytest.raises(WorkbenchError, match="single-input"):
        list(iter_dataset([x], ["a", "b"]))


def test_engine_runner_memory_info(model):
    info = EngineRunner(engine_of(model)).memory_info()
    assert info["weights_bytes"] == 2 * 64 * 4
    assert info["peak_bytes"] == info["weights_bytes"] + info["activations_bytes"] + info["io_bytes"] + \
        info["workspace_bytes"]


def test_torch_exported_program_knows_its_inputs():
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
    program = torch.export.export(module, (torch.randn(2, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    runner = Torch(program, device="cpu", output_names=["y"])
    feeds = make_inputs(runner, batch=3)
    assert feeds[runner.input_specs()[0].name].shape == (3, 8)
    assert runner.infer(feeds)["y"].shape == (3, 4)
    assert runner.memory_info()["weights_bytes"] == (8 * 4 + 4) * 4


def test_public_api_is_lazy():
    from workbench.tools.bench import bench
    from workbench.tools.compare import compare
    from workbench.tools.sweep import sweep

    assert (wb.bench, wb.compare, wb.sweep) == (bench, compare, sweep)
    assert wb.baselines.OnnxRuntime is OnnxRuntime
