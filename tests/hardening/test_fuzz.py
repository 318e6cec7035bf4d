"""Fuzzing with hypothesis: every outcome is a correct result or a WorkbenchError, never another
exception, a hang or a crash. Each case runs under a time bound; the suite takes well under a minute.
scripts/fuzz_long.py runs the same generators for hundreds of thousands of cases.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench as wb

from . import fuzzers
from .fuzzers import BUG_KINDS, outcome

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                print_blob=True)
CASE_SECONDS = 10.0


def _check(fn) -> None:
    kind, detail = outcome(fn, CASE_SECONDS)
    assert kind not in BUG_KINDS, f"{kind}: {detail}"


# ------------------------------------------------------------------------- ONNX protobufs
@settings(FAST, max_examples=1000)
@given(st.randoms(use_true_random=False))
def test_mutated_onnx_bytes(rng):
    """Flipped, overwritten, inserted and deleted bytes, and truncations, of real models."""
    _check(lambda: fuzzers.case_onnx_bytes(rng))


@settings(FAST, max_examples=1500)
@given(st.randoms(use_true_random=False))
def test_mutated_onnx_fields(rng):
    """Wrong dims, dtypes and attribute types, dangling and duplicate names, huge and negative dims,
    dropped, duplicated and reordered nodes, odd opsets; results compared with onnx.reference when
    the mutated model is still valid ONNX."""
    _check(lambda: fuzzers.case_onnx_fields(rng))


@settings(FAST, max_examples=1000)
@given(st.randoms(use_true_random=False))
def test_random_valid_graphs_match_onnx_reference(rng):
    _check(lambda: fuzzers.case_valid_graph(rng))


def test_the_graph_generator_uses_the_ops_that_have_kernels():
    """The fuzzer's coverage grows with the kernels: it must reach conv, pooling and matmul when present."""
    from workbench.backends.cpu.registry import kernel_for

    ops = set()
    for seed in range(200):
        ops |= {n.op_type for n in fuzzers.random_graph(random.Random(seed)).graph.node}
    for op in ("Relu", "Add", "Transpose", "Reshape", "Concat", "Slice", "Softmax", "ReduceSum", "MatMul",
               "Conv", "MaxPool", "GlobalAveragePool", "Gemm", "BatchNormalization"):
        assert op in ops or kernel_for(op) is None, f"{op} has a kernel but the generator never used it"


def test_mismatches_are_caught(monkeypatch):
    """The oracle comparison is live: a kernel off by 1% is reported as a mismatch."""
    from workbench.backends.cpu import registry

    registry.load_all()
    for op in ("Transpose", "Reshape", "Concat", "Slice"):
        exact = registry.KERNELS[("", op)]
        monkeypatch.setitem(registry.KERNELS, ("", op), lambda *x, exact=exact, **a: exact(*x, **a) * 1.01)
    kinds = {outcome(lambda: fuzzers.case_valid_graph(random.Random(seed)))[0] for seed in range(60)}
    assert "mismatch" in kinds


# ----------------------------------------------------------------------------------- plans
@pytest.fixture(scope="module")
def plan_bytes():
    return fuzzers.base_plan(0)


@settings(FAST, max_examples=500)
@given(data=st.data())
def test_bit_flipped_plans(plan_bytes, data):
    positions = data.draw(st.lists(st.integers(0, len(plan_bytes) - 1), min_size=1, max_size=4), "positions")
    bits = data.draw(st.lists(st.integers(0, 7), min_size=len(positions), max_size=len(positions)), "bits")
    flipped = bytearray(plan_bytes)
    for p, b in zip(positions, bits):
        flipped[p] ^= 1 << b
    kind, detail = outcome(lambda: fuzzers.run_plan(bytes(flipped), random.Random(0)), CASE_SECONDS)
    assert kind not in BUG_KINDS, detail
    if bytes(flipped) != plan_bytes:
        assert kind == "refused", "a flipped bit got past the checksum"


@settings(FAST, max_examples=200)
@given(data=st.data())
def test_truncated_plans(plan_bytes, data):
    cut = data.draw(st.integers(0, len(plan_bytes) - 1), "length")
    with pytest.raises(wb.PlanFormatError):
        wb.load_plan(plan_bytes[:cut])


@settings(FAST, max_examples=1500)
@given(st.randoms(use_true_random=False))
def test_forged_plan_headers(rng):
    """Header values replaced, deleted or duplicated and the file re-sealed with a valid checksum."""
    _check(lambda: fuzzers.case_plan_forged(rng))


# ------------------------------------------------------------------------ calibration caches
def _cache_module():
    """Imported per test, so the other fuzz tests run in a checkout without the quant package."""
    return pytest.importorskip("workbench.quant.cache", reason="workbench.quant.cache is not in this checkout")


@settings(FAST, max_examples=500)
@given(body=st.binary(max_size=400), header=st.sampled_from(["valid", "garbage", "none"]))
def test_garbage_calibration_caches(tmp_path_factory, body, header):
    module = _cache_module()
    path = tmp_path_factory.mktemp("cache") / "model.calib"
    first = {"valid": f"{module.MAGIC} version=0.1.0 kind=EntropyCalibrator network=0123456789abcdef\n".encode(),
             "garbage": b"\xff\xfegarbage\n", "none": b""}[header]
    path.write_bytes(first + body)
    kind, detail = outcome(lambda: module.read_cache(path))
    assert kind not in BUG_KINDS, detail


@settings(FAST, max_examples=200)
@given(scales=st.dictionaries(st.text(min_size=1, max_size=20), st.floats(1e-30, 1e30), max_size=8))
def test_calibration_caches_round_trip(tmp_path_factory, scales):
    module = _cache_module()
    path = tmp_path_factory.mktemp("cache") / "model.calib"
    kind, detail = outcome(lambda: module.write_cache(path, scales, "0123456789abcdef", "MinMaxCalibrator"))
    assert kind not in BUG_KINDS, detail
    if kind == "ok":
        back = module.read_cache(path, "0123456789abcdef", "MinMaxCalibrator")
        assert set(back) == set(scales)
        assert all(np.float32(back[k]) == np.float32(v) for k, v in scales.items())
