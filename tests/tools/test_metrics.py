import numpy as np
import pytest

from workbench.tools.metrics import accuracy, closeness, error_stats, topk_agreement


def test_identical_arrays():
    a = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    s = error_stats(a, a.copy(), 0, 0)
    assert s["passed"] and s["max_abs"] == 0 and s["snr_db"] == float("inf") and s["cosine"] == pytest.approx(1)
    assert s["top1"] == 1 and s["topk"] == 1 and s["k"] == 5


def test_known_errors():
    e = np.array([1.0, 2.0, 4.0, 0.0])
    a = e + np.array([0.1, 0.0, 0.0, 0.2])
    s = error_stats(a, e, atol=0.15, rtol=0)
    assert s["max_abs"] == pytest.approx(0.2) and s["mean_abs"] == pytest.approx(0.075)
    assert s["max_rel"] == pytest.approx(0.1)  # the zero reference is left out of relative errors
    assert s["mismatches"] == 1 and not s["passed"]
    assert s["snr_db"] == pytest.approx(10 * np.log10(21 / 0.05))


def test_shape_mismatch_fails_with_a_reason():
    s = error_stats(np.ones((2, 3)), np.ones((3, 2)), 1, 1)
    assert not s["passed"] and "shape" in s["reason"]


def test_nan_matches_nan_only():
    ok = closeness(np.array([np.nan, 1.0, np.nan, np.inf]), np.array([np.nan, np.nan, 1.0, np.inf]), 0, 0)
    assert ok.tolist() == [True, False, False, True]


def test_topk_and_accuracy():
    logits = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    swapped = np.array([[2.0, 3.0, 1.0], [1.0, 2.0, 3.0]])
    assert topk_agreement(swapped, logits, 2) == (0.5, 1.0)
    assert accuracy(logits, np.array([0, 1])) == 0.5
