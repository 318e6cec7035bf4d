import json
import pickle

import numpy as np
import pytest

from workbench.baselines import Reference
from workbench.errors import ConfigError
from workbench.tools.sweep import SweepTask, grid_points, pareto_front, run_point, sweep

from .models import FAST, add_relu_model

pytestmark = pytest.mark.filterwarnings("ignore::workbench.tools.bench.BenchWarning")
BENCH = {**FAST, "duration_s": 0.05}


@pytest.fixture(scope="module")
def model():
    return add_relu_model(width=64)


def test_grid_points_and_bad_grids():
    assert grid_points({"batch": [1, 2], "precision": "fp16"}) == [
        {"batch": 1, "precision": "fp16"}, {"batch": 2, "precision": "fp16"}]
    with pytest.raises(ConfigError, match="unknown"):
        grid_points({"batch_size": [1]})
    with pytest.raises(ConfigError, match="no values"):
        grid_points({"batch": []})
    with pytest.raises(ConfigError, match="non-empty"):
        grid_points({})


def test_serial_sweep_rows_and_pareto(model):
    result = sweep(model, {"batch": [1, 4], "precision": ["fp32", "fp16"]}, config={"device": "cpu"},
                   bench_options=BENCH)
    frame = result.to_dataframe()
    assert len(frame) == 2 + 4  # one baseline row per batch, one row per point
    assert (frame["status"] == "ok").all(), frame["message"].tolist()
    points = frame[frame["runner"] == "workbench-cpu"]
    assert set(zip(points["batch"], points["precision"])) == {(1, "fp32"), (1, "fp16"), (4, "fp32"), (4, "fp16")}
    assert (points.loc[points["precision"] == "fp32", "max_abs"] == 0).all()
    assert (points.loc[points["precision"] == "fp16", "max_abs"] > 0).all()
    assert frame["pareto"].any() and "latency_mean_ms" in result.objectives
    assert json.loads(result.to_json())["grid"]["batch"] == [1, 4]


def test_a_rejected_value_is_an_error_row(model):
    result = sweep(model, {"batch": [2], "precision": ["fp32", "fp64"]}, baseline=False,
                   config={"device": "cpu"}, bench_options=BENCH)
    frame = result.to_dataframe()
    bad = result.errors
    assert len(frame) == 2 and len(bad) == 1
    assert bad["precision"].iloc[0] == "fp64" and "ConfigError" in bad["message"].iloc[0]
    assert not bad["pareto"].iloc[0]
    assert frame.loc[frame["status"] == "ok", "throughput"].iloc[0] > 0


def test_sweep_with_labels_and_a_reference_baseline(model):
    x = np.random.default_rng(0).standard_normal((12, 64)).astype(np.float32)
    y = Reference(model).infer({"x": x})["y"].argmax(-1)
    result = sweep(model, {"batch": [4]}, baseline=Reference(model), data=(x, y), config={"device": "cpu"},
                   bench_options=BENCH)
    frame = result.to_dataframe()
    assert list(frame["runner"]) == ["onnx-reference", "workbench-cpu"]
    assert (frame["accuracy"] == 1.0).all() and frame["passed"].all()


def test_tasks_pickle(model):
    task = SweepTask(model.SerializeToString(), {"batch": 1}, {"device": "cpu"}, BENCH, {"atol": 1, "rtol": 1})
    row = run_point(pickle.loads(pickle.dumps(task)))
    assert row["status"] == "ok" and row["throughput"] > 0


def test_sweep_on_a_dask_local_cluster(model):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        result = sweep(model, {"batch": [1, 2], "precision": ["fp32", "bogus"]}, executor=client.get_executor(),
                       config={"device": "cpu"}, bench_options=BENCH)
    frame = result.to_dataframe()
    assert len(frame) == 2 + 4
    assert (frame["status"] == "ok").sum() == 4 and len(result.errors) == 2


def test_a_dead_worker_is_an_error_row(model):
    class Broken:
        def submit(self, fn, *args):
            from concurrent.futures import Future

            f = Future()
            f.set_exception(RuntimeError("worker lost"))
            return f

    result = sweep(model, {"batch": [1]}, baseline=False, executor=Broken(), config={"device": "cpu"})
    assert "worker lost" in result.errors["message"].iloc[0]


def test_pareto_front():
    values = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [1, 5]])
    assert pareto_front(values).tolist() == [True, True, False, True, True]
