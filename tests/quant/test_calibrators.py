"""Calibrators: thresholds on synthetic distributions, ranges on a small network, progress and cancel."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from workbench.errors import CancelledError, ConfigError
from workbench.quant.calibrators import (EntropyCalibrator, MinMaxCalibrator, PercentileCalibrator, _kl_divergences,
                                         abs_histogram, entropy_threshold, percentile_threshold)

from .helpers import batches, elementwise_net

RNG = np.random.default_rng(0)


def brute_force_kl(hist, levels):
    """The textbook loop (NVIDIA's 8-bit inference slides / pytorch-quantization), one candidate at a time."""
    hist = np.array(hist, np.float64)
    out = []
    for i in range(levels, len(hist) + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        group = (np.arange(i) * levels) // i
        q = np.zeros(i)
        for g in range(levels):
            nz = (group == g) & (hist[:i] > 0)
            if nz.any():
                q[nz] = hist[:i][group == g].sum() / nz.sum()
        if q.sum() == 0 or np.count_nonzero(hist[:i]) < 2:
            out.append(np.inf)
            continue
        p, q = p / p.sum(), q / q.sum()
        q = np.where((p > 0) & (q == 0), 1e-12, q)
        mask = p > 0
        out.append(float(np.sum(p[mask] * np.log(p[mask] / q[mask]))))
    return np.array(out)


@pytest.mark.parametrize("sample", [lambda: RNG.standard_normal(5000), lambda: np.maximum(RNG.standard_normal(5000), 0),
                                    lambda: RNG.laplace(size=3000), lambda: RNG.integers(0, 9, 4000) * 1.0])
def test_vectorised_kl_equals_the_textbook_loop(sample):
    x = sample()
    hist = abs_histogram(x, float(np.abs(x).max()), 384)
    want = brute_force_kl(hist, 64)
    got = _kl_divergences(hist, np.arange(64, 385), 64, hist.sum())
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-12)


def test_entropy_clips_heavy_tails_but_not_bounded_data():
    heavy = np.concatenate([RNG.standard_normal(200_000), [60.0, -45.0]])
    amax = float(np.abs(heavy).max())
    t = entropy_threshold(abs_histogram(heavy, amax, 2048), amax)
    assert 3.0 < t < 0.2 * amax  # an outlier 60 sigma out does not set the range
    laplace = RNG.laplace(size=200_000)
    amax = float(np.abs(laplace).max())
    assert entropy_threshold(abs_histogram(laplace, amax, 2048), amax) < 0.9 * amax
    uniform = RNG.uniform(-1, 1, 200_000)
    assert entropy_threshold(abs_histogram(uniform, 1.0, 2048), 1.0) > 0.99


def test_entropy_ignores_relu_zeros_and_discrete_levels():
    relu = np.maximum(RNG.standard_normal(200_000), 0)
    amax = float(relu.max())
    assert entropy_threshold(abs_histogram(relu, amax, 2048), amax) > 0.7 * amax
    pixels = RNG.integers(0, 17, 50_000) / 16.0  # 17 grey levels, most bins empty: the range is kept
    assert entropy_threshold(abs_histogram(pixels, 1.0, 2048), 1.0) == pytest.approx(1.0)


def test_percentile_threshold_matches_numpy():
    x = RNG.standard_normal(500_000)
    amax = float(np.abs(x).max())
    hist = abs_histogram(x, amax, 2048)
    for p in (90.0, 99.0, 99.99):
        assert percentile_threshold(hist, amax, p) == pytest.approx(np.percentile(np.abs(x), p), abs=amax / 2048)
    assert percentile_threshold(hist, amax, 100.0) == pytest.approx(amax, rel=1e-3)


def test_zero_tensor_gets_a_usable_scale():
    assert entropy_threshold(np.zeros(2048), 0.0) == 0.0
    assert percentile_threshold(np.zeros(2048), 0.0, 99.0) == 0.0


def test_minmax_ranges_of_a_network():
    net, data = elementwise_net(), batches()
    scales = MinMaxCalibrator(data, progress=False).calibrate(net)
    x = np.concatenate([b["x"] for b in data])
    w = net.weights["scale_c"]
    assert set(scales) == {"x", "scale_out", "relu_out", "shift_out"}
    assert scales["x"] == pytest.approx(np.abs(x).max() / 127, rel=1e-6)
    assert scales["relu_out"] == pytest.approx(np.maximum(x * w, 0).max() / 127, rel=1e-6)


def test_calibrators_order_on_heavy_tails():
    net = elementwise_net()
    data = batches(n=2, batch=512)
    data[0]["x"][0, 0] = 40.0  # one outlier
    mm = MinMaxCalibrator(data, progress=False).calibrate(net)["x"]
    pc = PercentileCalibrator(data, percentile=99.9, progress=False).calibrate(net)["x"]
    en = EntropyCalibrator(data, progress=False).calibrate(net)["x"]
    assert mm == pytest.approx(40.0 / 127)
    assert pc < 0.2 * mm and en < 0.5 * mm


def test_progress_is_reported_per_batch():
    seen = []
    EntropyCalibrator(batches(n=3), progress=False).calibrate(elementwise_net(), progress=seen.append)
    assert seen == pytest.approx([i / 6 for i in range(1, 7)])  # two passes of three batches


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_cancel_stops_and_writes_no_cache(tmp_path, kind):
    path = tmp_path / "model.calib"
    runs = []
    if kind == "event":
        cancel = threading.Event()
        cancel.set()
    else:
        cancel = lambda: len(runs) >= 2  # noqa: E731 - stops after the second batch
    cal = EntropyCalibrator(batches(n=4), cache=path, progress=False, cancel=cancel)
    with pytest.raises(CancelledError, match="no cache was written"):
        cal.calibrate(elementwise_net(), progress=runs.append)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    assert cal.scales is None


def test_percentile_must_be_in_range():
    with pytest.raises(ConfigError, match="percentile"):
        PercentileCalibrator(batches(), percentile=0)
    assert PercentileCalibrator(batches(), percentile=99.9).kind == "PercentileCalibrator(percentile=99.9)"


def test_progress_bar_is_shown(capsys):
    EntropyCalibrator(batches(n=2), progress=True).calibrate(elementwise_net())
    assert "calibrating (EntropyCalibrator)" in capsys.readouterr().err
