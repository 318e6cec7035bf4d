"""The CPU backend's build-time choices (tactics timed per layer, BLAS threads) and their use at run time."""
import numpy as np
import pytest
import threadpoolctl

import workbench as wb
from workbench.backends.cpu import backend
from workbench.errors import UnsupportedError


def _conv_net(channels=32, size=12):
    """conv3x3 (a choice of tactics) -> relu -> depthwise conv3x3 (no choice) -> relu."""
    rng = np.random.default_rng(0)
    net = wb.Network("convs")
    x = net.add_input("x", "float32", ("batch", channels, size, size))
    y = net.add_convolution(x, rng.standard_normal((channels, channels, 3, 3)).astype(np.float32),
                            bias=rng.standard_normal(channels).astype(np.float32), padding=1, name="full").output
    y = net.add_activation(y, "Relu").output
    y = net.add_convolution(y, rng.standard_normal((channels, 1, 3, 3)).astype(np.float32), padding=1,
                            groups=channels, name="dw").output
    net.mark_output(net.add_activation(y, "Relu").output)
    return net


def _reference(net, x):
    return wb.build(net, wb.BuilderConfig(device="cpu", max_batch=2, builder_optimization_level=0)) \
        .create_execution_context().execute({"x": x})


@pytest.fixture(scope="module")
def engine():
    return wb.build(_conv_net(), wb.BuilderConfig(device="cpu", max_batch=2, timing_iterations=2))


def test_layers_with_a_choice_are_timed_and_get_the_fastest(engine):
    (name, timings), = engine.report["timings"].items()  # only the full conv has a choice
    assert engine.tactics[name] == min(timings, key=timings.get) and set(timings) == {"im2col", "taps", "winograd"}
    assert all(t > 0 for t in timings.values())
    dw = next(n for n, t in engine.tactics.items() if t == "depthwise")  # one way: named, not timed
    assert dw not in engine.report["timings"]


@pytest.mark.parametrize("tactic", ["im2col", "taps", "winograd"])
def test_every_tactic_computes_the_same(engine, tactic):
    x = np.random.default_rng(1).standard_normal((2, 32, 12, 12)).astype(np.float32)
    (conv,) = engine.report["timings"]
    chosen, engine.tactics[conv] = engine.tactics[conv], tactic
    try:
        got = engine.create_execution_context().execute({"x": x})
    finally:
        engine.tactics[conv] = chosen
    want = _reference(_conv_net(), x)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)


def test_optimization_level_zero_times_nothing():
    engine = wb.build(_conv_net(), wb.BuilderConfig(device="cpu", max_batch=2, builder_optimization_level=0))
    assert engine.report["timings"] == {} and "im2col" in engine.tactics.values()


def test_a_tactic_this_version_does_not_know_is_refused_with_the_fix(engine):
    plan = engine.tactics.copy()
    engine.tactics["dw"] = "fft"
    try:
        with pytest.raises(UnsupportedError, match="rebuild"):
            backend.Runner(engine)
        engine.tactics.update({"dw": "numpy"})  # a plan from before tactics: the default method
        backend.Runner(engine)
    finally:
        engine.tactics.update(plan)


@pytest.mark.parametrize("cpu_threads, macs, cores, want", [
    (3, 0, 2, 3),         # the user's choice wins
    (None, 1e6, 16, 1),   # small layers: one thread, however many cores
    (None, 1e9, 2, 1),    # big layers on 2 cores: still one (spinning threads oversubscribe)
    (None, 1e9, 16, 8),   # big layers, many cores: half of them
])
def test_blas_threads_policy(monkeypatch, cpu_threads, macs, cores, want):
    monkeypatch.setattr(backend, "cores", lambda: cores)
    assert backend.blas_threads(cpu_threads, macs) == want


def test_the_build_records_its_thread_choice_and_contexts_use_it(monkeypatch):
    seen = []
    monkeypatch.setattr(backend._CAP, "enter", lambda n: seen.append(n))
    monkeypatch.setattr(backend._CAP, "exit", lambda: None)
    engine = wb.build(_conv_net(size=6), wb.BuilderConfig(device="cpu", max_batch=1, cpu_threads=3,
                                                          builder_optimization_level=0))
    assert engine.report["blas_threads"] == 3
    engine.create_execution_context().execute({"x": np.zeros((1, 32, 6, 6), np.float32)})
    assert seen == [3, 3]  # the build's tactic timing, then the context


def test_the_blas_cap_is_set_by_the_first_context_and_never_changed_while_one_runs():
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("no BLAS library that threadpoolctl can control")
    before = [i["num_threads"] for i in blas.info()]
    cap = backend._BlasCap()
    cap.enter(2)
    assert [i["num_threads"] for i in blas.info()] == [2] * len(before)
    cap.enter(1)  # a second context at once: changing the setting under a running call crashes OpenBLAS
    assert [i["num_threads"] for i in blas.info()] == [2] * len(before)
    cap.exit()
    assert [i["num_threads"] for i in blas.info()] == [2] * len(before)
    cap.exit()
    assert [i["num_threads"] for i in blas.info()] == before
