"""Calibrators: per-tensor activation ranges measured by running the fp32 network on sample data.

    EntropyCalibrator    TensorRT's: the threshold whose 128-level quantization of a 2048-bin
                         histogram of |x| loses least information (KL divergence)
    MinMaxCalibrator     the largest |x| seen
    PercentileCalibrator the given percentile of |x| (99.99 by default)

Each runs the network at fp32 through ExecutionContext.execute(on_layer=...), shows a progress
bar (tqdm.auto), can be cancelled (a callable or a threading.Event; then nothing is written), and
reuses its cache file when one matches the network and calibrator.

    >>> cal = EntropyCalibrator(d.x_calib, cache="digits.calib", batch_size=32)
    >>> scales = cal.calibrate(network)        # {tensor: int8 scale (amax / 127)}
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CancelledError, ConfigError
from .cache import calibrated_tensors, network_key, read_cache, write_cache
from .data import CalibrationData, batch_profile
from .numerics import symmetric_scale

HISTOGRAM_BINS = 2048
ENTROPY_LEVELS = 128        # |x| maps to 0..127 in symmetric int8
_KL_TIE = 1e-9              # divergences this close are equal: the larger threshold wins
_EMPTY_BIN = 1e-12          # probability given to an empty quantized bin where the reference has mass


class Calibrator:
    """Base class: validates data, runs the fp32 network over it, turns ranges into scales.

    data: calibration batches (see CalibrationData); may be None when `cache` already holds
    the scales. cache: path of the calibration cache, read when it matches, written after a
    completed calibration. cancel: a callable returning True, or a threading.Event, to stop.
    """

    passes = 1  # how many times the data is run through the network

    def __init__(self, data=None, cache=None, *, batch_size: int | None = None, progress: bool = True,
                 cancel=None, device: str = "cpu"):
        self.data = CalibrationData(data, batch_size) if data is not None else None
        self.cache = Path(cache) if cache is not None else None
        self.progress, self.cancel, self.device = progress, cancel, device
        self.scales: dict | None = None
        self.from_cache = False
        self._key: str | None = None  # the network the scales were measured on

    @property
    def kind(self) -> str:
        """The calibrator's name and settings, as written in (and checked against) the cache header."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{self.kind}(cache={str(self.cache) if self.cache else None!r})"

    # ---- the public steps ----------------------------------------------------------------------
    def check(self, net) -> None:
        """Raise a clear error now if the cache is of another calibrator or the data does not fit `net`.

        (Whether a cache matches the network is checked by `calibrate`, on the network it measures.)
        """
        if self.scales is not None and self._key == network_key(net):
            return
        if self.cache is not None and self.cache.exists():
            read_cache(self.cache, kind=self.kind)
        else:
            self._batches(net)

    def calibrate(self, net, progress=None, cancel=None) -> dict:
        """{tensor: int8 scale} for `net`, from the cache or by running it on the data.

        progress(fraction) reports advance; cancel() returning True stops with CancelledError.
        """
        key = network_key(net)
        if self.scales is not None and self._key == key:
            return self.scales  # measured already (e.g. by an earlier build of the same network)
        cached = self._cached(net)
        if cached is not None:
            self.scales, self.from_cache, self._key = cached, True, key
            return cached
        batches = self._batches(net)
        tick = _Ticker(self.kind, self.passes * len(batches), self.progress, progress, (self.cancel, cancel))
        try:
            amax = self.ranges(_Sweeper(net, batches, self.device, tick))
        finally:
            tick.close()
        scales = {name: float(symmetric_scale(a, "int8")) for name, a in amax.items()}
        if self.cache is not None:
            write_cache(self.cache, scales, net, self.kind)
        self.scales, self.from_cache, self._key = scales, False, key
        return scales

    def ranges(self, sweep: "_Sweeper") -> dict:
        """{tensor: amax}: the subclass's measurement, using sweep.run(observe) once per pass."""
        raise NotImplementedError

    # ---- helpers -------------------------------------------------------------------------------
    def _cached(self, net):
        if self.cache is None or not self.cache.exists():
            return None
        return read_cache(self.cache, net, self.kind)

    def _batches(self, net) -> list:
        if self.data is None:
            where = f"cache {self.cache} does not exist yet" if self.cache else "no cache was given"
            raise ConfigError(f"{self.kind} has no calibration data and {where}: give data=batches "
                              f"(an iterable of {{input: array}}, a folder of .npy/.npz files or a callable)")
        return self.data.check(net)


class MinMaxCalibrator(Calibrator):
    """amax = the largest |x| seen: no clipping, coarser steps when there are outliers."""

    def ranges(self, sweep):
        return sweep.run_amax()


class _HistogramCalibrator(Calibrator):
    """Two passes: the range of |x|, then a histogram of |x| over [0, amax] in which a threshold is chosen."""

    passes = 2

    def ranges(self, sweep):
        amax = sweep.run_amax()
        hists = sweep.run_histograms(amax, HISTOGRAM_BINS)
        return {name: self.threshold(h, amax[name]) for name, h in hists.items()}

    def threshold(self, hist: np.ndarray, amax: float) -> float:
        raise NotImplementedError


class EntropyCalibrator(_HistogramCalibrator):
    """TensorRT's entropy calibration: the threshold minimising KL(P || Q) between the histogram of
    |x| clipped at the threshold (P) and its 128-level quantization (Q)."""

    def threshold(self, hist, amax):
        return entropy_threshold(hist, amax, ENTROPY_LEVELS)


class PercentileCalibrator(_HistogramCalibrator):
    """amax = the `percentile` of |x| (99.99 by default), read from the histogram."""

    def __init__(self, data=None, cache=None, *, percentile: float = 99.99, **kwargs):
        if not isinstance(percentile, (int, float)) or not 0 < percentile <= 100:
            raise ConfigError(f"percentile must be in (0, 100], got {percentile!r}")
        self.percentile = float(percentile)
        super().__init__(data, cache, **kwargs)

    @property
    def kind(self) -> str:
        return f"PercentileCalibrator(percentile={self.percentile:g})"

    def threshold(self, hist, amax):
        return percentile_threshold(hist, amax, self.percentile)


# ---- thresholds from a histogram of |x| over [0, amax] ---------------------------------------------
def entropy_threshold(hist: np.ndarray, amax: float, levels: int = ENTROPY_LEVELS) -> float:
    """The |x| threshold of least KL divergence, TensorRT style (as NVIDIA's pytorch-quantization).

    For each candidate i (bins kept, levels..n): P = hist[:i] with the outliers hist[i:] added to
    its last bin; Q = hist[:i] merged into `levels` equal groups, each group's count spread over
    its non-empty bins. The threshold is the upper edge of bin i for the best i (the largest on
    ties). Bin 0 is given bin 1's count first: the exact zeros of a ReLU output would otherwise
    dominate the divergence and pull the threshold far down.
    """
    hist = np.array(hist, np.float64)
    n = len(hist)
    if n > 1:
        hist[0] = hist[1]
    total = float(hist.sum())
    if total == 0 or amax <= 0 or n <= levels:
        return float(amax)
    kl = _kl_divergences(hist, np.arange(levels, n + 1), levels, total)
    ties = np.nonzero(kl <= kl.min() + _KL_TIE)[0]
    best = levels + int(ties[-1])
    return float(amax) * best / n


def _kl_divergences(hist: np.ndarray, cands: np.ndarray, levels: int, total: float) -> np.ndarray:
    """KL(P_i || Q_i) for every candidate bin count i in `cands`, by groups rather than by bins.

    Q is constant over the non-empty bins of a group, so sum_j p_j log q_j is one term per
    group; sum_j p_j log p_j comes from a prefix sum. The last kept bin (which holds the
    outliers in P) is handled on its own. Cost: len(cands) x levels, not len(cands) x bins.
    """
    xlogx = np.where(hist > 0, hist * np.log(np.where(hist > 0, hist, 1.0)), 0.0)
    counts = np.concatenate([[0.0], np.cumsum(hist)])
    nonzero = np.concatenate([[0], np.cumsum(hist > 0)])
    plogp_sums = np.concatenate([[0.0], np.cumsum(xlogx)])
    i = cands[:, None]
    g = np.arange(levels)[None, :]
    start = -(-(g * i) // levels)                       # group g covers bins [ceil(g*i/L), ceil((g+1)*i/L))
    stop = np.minimum(-(-((g + 1) * i) // levels), i)
    group_sum = counts[stop] - counts[start]
    group_nz = nonzero[stop] - nonzero[start]
    kept = counts[cands]                                # mass of hist[:i]
    last = hist[cands - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.log(group_sum / np.maximum(group_nz, 1)) - np.log(kept)[:, None]
        own = group_sum.copy()
        own[:, -1] -= last                              # P's mass in each group, last bin excluded
        cross = np.where(own > 0, own * log_q, 0.0).sum(axis=1) / total
        head = (plogp_sums[cands - 1] - np.log(total) * counts[cands - 1]) / total
        p_last = (last + total - kept) / total
        q_last = np.where(last > 0, np.exp(log_q[:, -1]), _EMPTY_BIN)
        tail = np.where(p_last > 0, p_last * (np.log(p_last) - np.log(q_last)), 0.0)
    kl = head - cross + tail
    # With fewer than two non-empty bins kept, P and Q are one spike each and trivially equal.
    return np.where((nonzero[cands] >= 2) & np.isfinite(kl), kl, np.inf)


def percentile_threshold(hist: np.ndarray, amax: float, percentile: float) -> float:
    """The |x| below which `percentile` % of the values lie, interpolated within its bin."""
    hist = np.asarray(hist, np.float64)
    total = hist.sum()
    if total == 0 or amax <= 0:
        return float(amax)
    cum = np.cumsum(hist)
    target = total * percentile / 100.0
    k = min(int(np.searchsorted(cum, target, side="left")), len(hist) - 1)
    before = cum[k - 1] if k else 0.0
    frac = (target - before) / hist[k] if hist[k] > 0 else 1.0
    return float(amax) * (k + min(max(frac, 0.0), 1.0)) / len(hist)


def abs_histogram(x: np.ndarray, amax: float, bins: int) -> np.ndarray:
    """Counts of |x| in `bins` equal bins over [0, amax] (values at amax in the last bin)."""
    a = np.abs(np.asarray(x, np.float32)).ravel()
    if amax <= 0:
        return np.bincount(np.zeros(a.size, np.int64), minlength=bins).astype(np.float64)
    idx = np.minimum((a * np.float32(bins / amax)).astype(np.int64), bins - 1)
    return np.bincount(idx, minlength=bins).astype(np.float64)


# ---- running the network -------------------------------------------------------------------------
class _Sweeper:
    """Runs the batches through an fp32 engine of `net`, handing each calibrated tensor to `observe`."""

    def __init__(self, net, batches: list, device: str, tick: "_Ticker"):
        self.net, self.batches, self.tick = net, batches, tick
        self.tensors = calibrated_tensors(net)
        self.context = _fp32_engine(net, batches, device).create_execution_context()

    def run(self, observe) -> None:
        wanted = set(self.tensors)
        inputs = [n for n in self.net.inputs if n in wanted]

        def on_layer(layer, env):
            for name in layer.outputs:
                if name in wanted and name in env:
                    observe(name, env[name])

        for batch in self.batches:
            for name in inputs:
                observe(name, batch[name])
            self.context.execute(batch, on_layer=on_layer)
            self.tick.step()

    def run_amax(self) -> dict:
        amax: dict = {}

        def observe(name, x):
            m = float(np.max(np.abs(x))) if x.size else 0.0
            amax[name] = max(amax.get(name, 0.0), m)

        self.run(observe)
        return amax

    def run_histograms(self, amax: dict, bins: int) -> dict:
        hists: dict = {}

        def observe(name, x):
            h = abs_histogram(x, amax[name], bins)
            hists[name] = hists[name] + h if name in hists else h

        self.run(observe)
        return hists


def _fp32_engine(net, batches: list, device: str):
    """An fp32 engine of `net` whose profile covers every batch's shapes."""
    from ..builder.build import build
    from ..builder.config import BuilderConfig

    return build(net, BuilderConfig(device=device, precision="fp32", profiles=[batch_profile(net, batches)]))


class _Ticker:
    """Progress (tqdm bar and callback) and cancellation, advanced once per batch."""

    def __init__(self, kind: str, total: int, bar: bool, callback, cancels):
        self.total, self.done, self.callback = max(total, 1), 0, callback
        self.cancels = [c for c in cancels if c is not None]
        self.bar = None
        if bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=f"calibrating ({kind})", unit="batch", leave=False)
        self._check()

    def _check(self) -> None:
        for c in self.cancels:
            if c.is_set() if hasattr(c, "is_set") else c():
                raise CancelledError(f"calibration cancelled after {self.done} of {self.total} batch runs; "
                                     f"no cache was written")

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.callback is not None:
            self.callback(self.done / self.total)
        self._check()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
