"""The tools on the shipped digits CNN (skipped where workbench.zoo or its ops are not in this checkout)."""
import pytest

import workbench as wb
from workbench.baselines import OnnxRuntime, Reference
from workbench.errors import ParseError, UnsupportedError
from workbench.tools.bench import bench
from workbench.tools.compare import compare
from workbench.tools.inspect import inspect_engine
from workbench.tools.sweep import sweep

from .models import FAST, tamper

pytestmark = pytest.mark.filterwarnings("ignore::workbench.tools.bench.BenchWarning")


@pytest.fixture(scope="module")
def digits():
    zoo = pytest.importorskip("workbench.zoo")
    return zoo.digits()


@pytest.fixture(scope="module")
def engine(digits):
    try:
        engine = wb.build(wb.load_onnx(str(digits.model)), wb.BuilderConfig(device="cpu", max_batch=32))
        engine.create_execution_context().execute({engine.inputs[0].name: digits.x_test[:1]})
    except (ParseError, UnsupportedError) as e:
        pytest.skip(f"the digits model needs ops this checkout lacks: {e}")
    return engine


def test_bench_numbers_are_consistent(engine):
    r = bench(engine, batch=8, **FAST)
    s = r.latency
    assert s["min"] <= s["median"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
    assert r.throughput == pytest.approx(8 / (s["mean"] / 1e3), rel=0.1)


@pytest.mark.parametrize("baseline", [OnnxRuntime, Reference])
def test_compare_on_the_test_set(engine, digits, baseline):
    n = 64 if baseline is Reference else len(digits.x_test)
    result = compare(engine, baseline(str(digits.model)), dataset=(digits.x_test[:n], digits.y_test[:n]), batch=32)
    assert result, result.summary()
    assert result.accuracy["delta"] == 0
    if n == len(digits.x_test):
        assert result.accuracy["runner"] == pytest.approx(digits.accuracy, abs=0.01)


def test_per_layer_names_a_broken_layer(engine, digits):
    import onnx

    names = {o for node in onnx.load(str(digits.model)).graph.node for o in node.output}
    net = engine.network
    target = next(l for l in net.layers if any(i in net.weights and net.weights[i].ndim >= 2 for i in l.inputs)
                  and all(o in names for o in l.outputs))
    weight = next(i for i in target.inputs if i in net.weights)
    broken = _copy(engine)
    result = compare(tamper(broken, weight), Reference(str(digits.model)), inputs={"input": digits.x_test[:4]},
                     per_layer=True)
    assert not result and result.first_bad_layer == target.name


def _copy(engine):
    from workbench.runtime.plan import deserialize

    return deserialize(engine.serialize())


def test_inspect_and_profile(engine):
    report = inspect_engine(engine, profile=True, iterations=5)
    frame = report.to_dataframe()
    assert report.summary["flops"] > 0 and frame["time_ms"].gt(0).all()
    assert frame["time_ms"].sum() == pytest.approx(report.summary["total_time_ms"], rel=0.25)


def test_sweep_on_dask(digits, engine):
    distributed = pytest.importorskip("dask.distributed")
    data = (digits.x_test[:64], digits.y_test[:64])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        result = sweep(str(digits.model), {"batch": [1, 16], "precision": ["fp32", "fp16"]}, data=data,
                       executor=client.get_executor(), config={"device": "cpu"},
                       bench_options={**FAST, "duration_s": 0.05})
    frame = result.to_dataframe()
    assert (frame["status"] == "ok").all(), frame["message"].tolist()
    assert frame["accuracy"].notna().all() and frame["pareto"].any()
