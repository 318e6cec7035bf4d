"""Execution contexts: input checks with helpful errors, profiles, and concurrency."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import workbench as wb
from workbench.errors import ExecutionError
from workbench.ir.ops import Info
from workbench.plugins import unregister

from .conftest import WIDTH, add_relu_network, build


def _x(rng, batch: int = 2, dtype=np.float32):
    return rng.standard_normal((batch, WIDTH)).astype(dtype)


def test_outputs_match_numpy(engine, rng):
    x = _x(rng, 3)
    (out,) = engine.create_execution_context().execute({"x": x}).values()
    assert out.dtype == np.float32
    assert np.array_equal(out, np.maximum(x + np.linspace(-1, 1, WIDTH, dtype=np.float32), 0))


@pytest.mark.parametrize("feeds, needle", [
    ({}, "missing ['x']"),
    ({"y": np.zeros((1, WIDTH), np.float32)}, "unknown ['y']"),
    ({"x": np.zeros((1, WIDTH), np.float32), "extra": np.zeros(1)}, "unknown ['extra']"),
])
def test_wrong_input_names_say_what_the_engine_takes(engine, feeds, needle):
    with pytest.raises(ExecutionError) as err:
        engine.create_execution_context().execute(feeds)
    assert needle in str(err.value) and "takes ['x']" in str(err.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.bool_])
def test_wrong_dtype_names_both_dtypes_and_the_fix(engine, rng, dtype):
    with pytest.raises(ExecutionError) as err:
        engine.create_execution_context().execute({"x": _x(rng).astype(dtype)})
    message = str(err.value)
    assert np.dtype(dtype).name in message and "float32" in message and "astype" in message


@pytest.mark.parametrize("shape, needle", [
    ((5, WIDTH), "outside min"),         # batch above the profile's max of 4
    ((0, WIDTH), "outside min"),         # batch below the profile's min of 1
    ((2, WIDTH + 1), "outside min"),     # a static dim changed
    ((2, WIDTH, 1), "expected rank 2"),  # a rank the engine never takes
    ((WIDTH,), "expected rank 2"),
])
def test_shapes_outside_the_profile_are_refused(engine, shape, needle):
    with pytest.raises(ExecutionError) as err:
        engine.create_execution_context().execute({"x": np.ones(shape, np.float32)})
    assert needle in str(err.value) and "'x'" in str(err.value) and "Rebuild" in str(err.value)


def test_every_batch_inside_the_profile_runs(engine, rng):
    ctx = engine.create_execution_context()
    for batch in range(1, 5):
        assert ctx.execute({"x": _x(rng, batch)})[engine.outputs[0].name].shape == (batch, WIDTH)


def test_not_a_dict_is_refused(engine, rng):
    with pytest.raises(ExecutionError, match="dict"):
        engine.create_execution_context().execute([_x(rng)])


def test_a_failed_call_leaves_the_context_usable(engine, rng):
    ctx = engine.create_execution_context()
    with pytest.raises(ExecutionError):
        ctx.execute({"x": _x(rng, 9)})
    assert ctx.execute({"x": _x(rng)})[engine.outputs[0].name].shape == (2, WIDTH)


def test_eight_threads_with_their_own_contexts_match_serial_runs_bit_for_bit(engine):
    threads, calls = 8, 200
    rng = np.random.default_rng(7)
    inputs = [[_x(rng, int(rng.integers(1, 5))) for _ in range(calls)] for _ in range(threads)]
    out = engine.outputs[0].name
    serial_ctx = engine.create_execution_context()
    serial = [[serial_ctx.execute({"x": x})[out].tobytes() for x in per] for per in inputs]
    results: list = [None] * threads
    errors: list = []
    start = threading.Barrier(threads)

    def worker(i: int):
        try:
            ctx = engine.create_execution_context()
            start.wait()
            results[i] = [ctx.execute({"x": x})[out].tobytes() for x in inputs[i]]
        except Exception as e:  # noqa: BLE001 - reported below with the thread's number
            errors.append((i, e))

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not errors, errors
    assert results == serial


# ---------------------------------------------------------------------------------- one context, two threads
BLOCKING = "ContextTestBlocking"


@pytest.fixture
def blocking_engine():
    """An engine whose plugin layer waits for `release`, signalling `entered` when a call is inside it."""
    entered, release = threading.Event(), threading.Event()

    def hold(x):
        entered.set()
        release.wait(10)
        return x.copy()

    wb.plugin(BLOCKING, shape=lambda x, **_: Info(x.dtype, x.shape), replace=True)(hold)
    try:
        net = add_relu_network(np.zeros(WIDTH))
        net.mark_output(net.add_plugin(BLOCKING, [net.outputs[0]]).output)
        net.outputs = net.outputs[-1:]
        yield build(net), entered, release
    finally:
        release.set()
        unregister(BLOCKING)


def test_one_context_used_from_two_threads_at_once_is_refused_clearly(blocking_engine, rng):
    engine, entered, release = blocking_engine
    ctx = engine.create_execution_context()
    x = np.abs(_x(rng))
    first: dict = {}
    t = threading.Thread(target=lambda: first.update(ctx.execute({"x": x})))
    t.start()
    assert entered.wait(10), "the first call never reached the plugin layer"
    with pytest.raises(ExecutionError, match="already running in another thread") as err:
        ctx.execute({"x": x})
    assert "create_execution_context" in str(err.value)
    release.set()
    t.join(10)
    (out,) = first.values()
    assert np.array_equal(out, x)
    (again,) = ctx.execute({"x": x}).values()  # the lock was released: the context works again
    assert np.array_equal(again, x)
