"""Helpers of the pass tests: skip without kernels, and run a network with and without a pass."""
from __future__ import annotations

import numpy as np
import pytest

import workbench
from workbench.backends.cpu.registry import kernel_for
from workbench.passes import pipeline
from tests.oracle import rand


def requires_kernels(*ops: str) -> None:
    """Skip the calling test unless every op in `ops` has a CPU kernel (other modules provide them)."""
    missing = [op for op in ops if kernel_for(op) is None]
    if missing:
        pytest.skip(f"no CPU kernel yet for {missing}")


def feeds_for(net, seed: int = 0) -> dict:
    """Random inputs for a network whose inputs have static shapes."""
    return {name: rand(*net.tensors[name].shape, dtype=net.tensors[name].dtype, seed=seed + i)
            for i, name in enumerate(net.inputs)}


def run(net, feeds: dict, passes=()) -> dict:
    """Outputs of `net` built for the CPU with only `passes` in the optimizer, then executed."""
    saved = pipeline.PASSES
    pipeline.PASSES = list(passes)
    try:
        profile = {name: (a.shape,) * 3 for name, a in feeds.items()}
        engine = workbench.build(net, workbench.BuilderConfig(device="cpu", profiles=[profile]))
    finally:
        pipeline.PASSES = saved
    return engine.create_execution_context().execute(feeds)


def assert_same_numerics(net, passes, feeds: dict | None = None, rtol=1e-5, atol=1e-5) -> None:
    """The network gives the same outputs (within float rounding) with and without `passes`.

    Skips the calling test while an op of the network has no CPU kernel yet.
    """
    requires_kernels(*sorted({layer.op for layer in net.layers if layer.domain == ""}))
    feeds = feeds or feeds_for(net)
    want, got = run(net, feeds), run(net, feeds, passes)
    assert set(want) == set(got)
    for name in want:
        assert got[name].shape == want[name].shape and got[name].dtype == want[name].dtype, name
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol, err_msg=name)


def ops(net) -> list:
    """The op types of a network's layers, in order."""
    return [layer.op for layer in net.layers]
