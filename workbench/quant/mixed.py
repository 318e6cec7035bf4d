"""Mixed precision to an accuracy budget: per-layer sensitivity, and the search for the fastest assignment.

Every candidate is built by the real builder (BuilderConfig(precision=..., layer_precisions=...))
and scored on the evaluation data against the fp32 engine, so what the search reports is what a
build with its `layer_precisions` gives. Speed proxy: the share of matrix FLOPs run in int8.

Metrics score outputs against the fp32 reference, higher is better: "cosine" (mean per-sample
cosine similarity, the worst output), "top1" (accuracy in % of the first output against `labels`,
or agreement with fp32's top-1 without labels), or any callable(outputs, reference) -> float.

    >>> table = sensitivity(net, eval_batches, "cosine", calibrator=cal)
    >>> result = search(net, eval_batches, "top1", budget=0.5, labels=y, calibrator=cal)
    >>> engine = wb.build(net, wb.BuilderConfig(precision="int8", calibrator=cal,
    ...                                         layer_precisions=result.layer_precisions))
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .data import CalibrationData, batch_profile
from .quantize import as_matrix, eligibility

# ---- metrics --------------------------------------------------------------------------------------


def cosine(outputs: dict, reference: dict) -> float:
    """The worst output's mean per-sample cosine similarity to the reference."""
    scores = []
    for name, ref in reference.items():
        a = np.asarray(outputs[name], np.float64).reshape(len(ref), -1)
        b = np.asarray(ref, np.float64).reshape(len(ref), -1)
        denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        same = np.all(a == b, axis=1)
        scores.append(float(np.mean(np.where(same, 1.0, np.sum(a * b, 1) / np.where(denom > 0, denom, 1.0)))))
    return min(scores)


def top1(labels=None):
    """The metric "top1": accuracy in % of the first output's argmax (vs labels, else vs the reference's)."""

    def score(outputs: dict, reference: dict) -> float:
        name = next(iter(reference))
        want = np.asarray(labels).reshape(-1) if labels is not None else np.argmax(reference[name], -1).reshape(-1)
        got = np.argmax(outputs[name], -1).reshape(-1)
        if got.shape != want.shape:
            raise ConfigError(f"top1: {got.size} predictions but {want.size} labels; give one label per sample")
        return float(np.mean(got == want) * 100.0)

    return score


METRICS = {"cosine": lambda labels: cosine, "top1": top1}


def _metric(metric, labels):
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: use one of {sorted(METRICS)} or a callable(outputs, reference)")
    return METRICS[metric](labels)


def _floor(metric, budget, baseline: float) -> float:
    """The lowest acceptable score: cosine's budget is a minimum, top1's and a callable's a drop."""
    if isinstance(budget, dict):
        if "min_score" in budget:
            return float(budget["min_score"])
        if "max_drop" in budget:
            return baseline - float(budget["max_drop"])
        raise ConfigError(f"budget dict needs 'min_score' or 'max_drop', got {sorted(budget)}")
    if not isinstance(budget, (int, float)):
        raise ConfigError(f"budget must be a number or {{'min_score'|'max_drop': number}}, got {budget!r}")
    return float(budget) if metric == "cosine" else baseline - float(budget)


# ---- evaluation -----------------------------------------------------------------------------------
class _Evaluator:
    """Builds and scores precision assignments of one network on one evaluation set."""

    def __init__(self, network, data, metric, labels, calibrator, precision, fallback, device):
        from ..passes.pipeline import optimize
        from .calibrators import EntropyCalibrator

        self.network, self.device, self.precision, self.fallback = network, device, precision, fallback
        self.net, _ = optimize(network)
        self.batches = CalibrationData(data).check(self.net)
        self.calibrator = calibrator or EntropyCalibrator(data, progress=False)
        self.metric = _metric(metric, labels)
        self.metric_name = metric if isinstance(metric, str) else getattr(metric, "__name__", "custom")
        self._scores: dict = {}
        scales = self.calibrator.calibrate(self.net)
        self.flops = {n: _flops(self.net, self.net.layer(n)) for n, why in eligibility(self.net, scales).items()
                      if why is None}
        if not self.flops:
            raise ConfigError(f"network {network.name!r} has no layer that can be quantized (Conv/Gemm/MatMul "
                              f"with constant weights and a calibrated input)")
        self.reference = self._run({"precision": "fp32"})
        self.fp32 = self.metric(self.reference, self.reference)
        self.trail: list = []

    def score(self, quantized, action: str = "") -> float:
        """The metric with exactly `quantized` layers at the target precision, the rest at the fallback."""
        key = frozenset(quantized)
        if key not in self._scores:
            options = {"precision": self.precision, "layer_precisions": self.assignment(quantized)}
            self._scores[key] = self.metric(self._run(options), self.reference)
        value = self._scores[key]
        self.trail.append({"step": len(self.trail), "action": action, "quantized": len(set(quantized)),
                           "int8_flops": self.share(quantized), "score": value})
        return value

    def assignment(self, quantized) -> dict:
        """layer_precisions for BuilderConfig: the quantizable layers not in `quantized` at the fallback."""
        return {n: (self.precision if n in quantized else self.fallback) for n in self.flops}

    def share(self, quantized) -> float:
        total = sum(self.flops.values())
        return sum(self.flops[n] for n in quantized) / total if total else 0.0

    def _run(self, options: dict) -> dict:
        from ..builder.build import build
        from ..builder.config import BuilderConfig

        cfg = BuilderConfig(device=self.device, calibrator=self.calibrator,
                            profiles=[batch_profile(self.net, self.batches)], **options)
        ctx = build(self.network, cfg).create_execution_context()
        outs = [ctx.execute(b) for b in self.batches]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def _flops(net, layer) -> float:
    """Multiply-adds x 2 per sample: output elements (symbolic dims as 1) x weights per output channel."""
    m = as_matrix(net, layer)
    shape = net.tensors[layer.outputs[0]].shape or ()
    elements = float(np.prod([d for d in shape if isinstance(d, int)], dtype=np.float64))
    return 2.0 * elements * float(m.w[0].size)


# ---- the public functions -------------------------------------------------------------------------
def sensitivity(network, data, metric="cosine", *, labels=None, calibrator=None, precision: str = "int8",
                fallback: str = "fp16", device: str = "cpu"):
    """A DataFrame, one row per quantizable layer: the score with only that layer at `precision`.

    Columns: layer, op, flops, score, score_drop (the fallback-only score minus this score: the error
    the layer adds), sorted by drop. df.attrs holds the fp32 and fallback-only scores.
    >>> sensitivity(net, batches, "cosine").head()
    """
    ev = _Evaluator(network, data, metric, labels, calibrator, precision, fallback, device)
    return _sensitivity(ev)


def _sensitivity(ev: "_Evaluator"):
    import pandas as pd

    base = ev.score(set(), "all at the fallback")
    rows = []
    for name, flops in ev.flops.items():
        value = ev.score({name}, f"only {name}")
        rows.append({"layer": name, "op": ev.net.layer(name).op, "flops": flops, "score": value,
                     "score_drop": base - value})
    df = pd.DataFrame(rows).sort_values("score_drop", ascending=False, kind="stable").reset_index(drop=True)
    df.attrs.update({"fp32": ev.fp32, "fallback": base, "metric": ev.metric_name})
    return df


@dataclass
class SearchResult:
    """The fastest assignment found within the budget, and how the search got there."""

    layer_precisions: dict          # for BuilderConfig(layer_precisions=...)
    quantized: list                 # layers at the target precision
    score: float
    fp32_score: float
    floor: float                    # the lowest acceptable score
    met: bool                       # False when even no quantization misses the budget
    int8_flops: float               # share of the quantizable FLOPs in the target precision
    trail: object = None            # DataFrame: every assignment tried, with its score
    sensitivity: object = None      # DataFrame from sensitivity()
    notes: list = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"SearchResult({len(self.quantized)} layers quantized, {self.int8_flops:.0%} of FLOPs, score "
                f"{self.score:.4g} (fp32 {self.fp32_score:.4g}, floor {self.floor:.4g}), met={self.met})")


def search(network, data, metric="cosine", budget=0.995, *, labels=None, calibrator=None, precision: str = "int8",
           fallback: str = "fp16", device: str = "cpu") -> SearchResult:
    """The assignment with the most FLOPs at `precision` whose score stays within `budget`.

    budget: for "cosine" the minimum score (0.995); for "top1" and callables the largest drop
    from the fp32 score (0.5 = half a point); or {"min_score": s} / {"max_drop": d}.
    Steps: all layers quantized; if that misses, layers leave in order of error added per
    FLOP, the fewest found by bisection; then each removed layer is tried back in.
    """
    import pandas as pd

    ev = _Evaluator(network, data, metric, labels, calibrator, precision, fallback, device)
    floor = _floor(metric, budget, ev.fp32)
    table = _sensitivity(ev)
    harm = {r.layer: max(r.score_drop, 0.0) / max(r.flops, 1.0) for r in table.itertuples()}
    order = sorted(ev.flops, key=lambda n: -harm[n])          # most harmful per FLOP leaves first
    keep = _fewest_removed(ev, order, floor)
    keep = _add_back(ev, keep, [n for n in reversed(order) if n not in keep], floor)
    score = ev.score(keep, "final")
    met = score >= floor
    notes = [] if met else [f"even {len(keep)} quantized layers score {score:.4g} < {floor:.4g}"]
    return SearchResult(ev.assignment(keep),
                        sorted(keep, key=list(ev.flops).index), score, ev.fp32, floor, met, ev.share(keep),
                        pd.DataFrame(ev.trail), table, notes)


def _fewest_removed(ev, order: list, floor: float) -> set:
    """The largest prefix-complement of `order` within the floor, by bisection on how many leave."""
    everything = set(order)
    if ev.score(everything, "all quantized") >= floor:
        return everything
    lo, hi = 1, len(order)          # lo..hi: the count of removed layers still in question
    best = set()
    while lo <= hi:
        k = (lo + hi) // 2
        kept = set(order[k:])
        if ev.score(kept, f"without the {k} most sensitive") >= floor:
            best, hi = kept, k - 1
        else:
            lo = k + 1
    return best


def _add_back(ev, kept: set, candidates: list, floor: float) -> set:
    """Try each removed layer back in (largest FLOPs per harm first), keeping those within the floor."""
    for name in candidates:
        trial = kept | {name}
        if ev.score(trial, f"add back {name}") >= floor:
            kept = trial
    return kept
