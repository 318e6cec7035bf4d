"""compare: a Polygraphy-like accuracy check of a runner (usually an engine) against a baseline.

    >>> result = wb.compare(engine, wb.baselines.OnnxRuntime("model.onnx"), atol=1e-4, rtol=1e-3)
    >>> bool(result), result.to_dataframe()
    >>> wb.compare(engine, wb.baselines.Reference("model.onnx"), per_layer=True).first_bad_layer

per_layer=True runs the engine with a callback that keeps every layer's outputs, asks the baseline
for the same-named tensors of the ORIGINAL model, and names the first layer (in execution order)
whose output is out of tolerance. Passes rename or fuse layers, so only tensors whose names exist
in both are compared.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, UnsupportedError, WorkbenchError
from .inputs import batch_of, iter_dataset, make_inputs
from .metrics import accuracy, error_stats
from .results import Result, pandas
from .runners import EngineRunner, as_runner

HIST_KEYS = ("hist_counts", "hist_edges")
LAYER_COLUMNS = ("max_abs", "mean_abs", "max_rel", "cosine", "snr_db", "mismatches", "passed")


@dataclass
class CompareResult(Result):
    """Per-output error statistics; truthy when every output is within tolerance."""

    runner: str
    baseline: str
    atol: float
    rtol: float
    outputs: dict                       # runner output name -> statistics (see metrics.error_stats)
    samples: int = 0
    batches: int = 0
    accuracy: dict | None = None        # {"output", "runner", "baseline", "delta"} when labels were given
    layers: list | None = None          # per-layer rows when per_layer=True
    first_bad_layer: str | None = None
    notes: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(s["passed"] for s in self.outputs.values())

    def __bool__(self) -> bool:
        return self.passed

    def histogram(self, output: str) -> tuple:
        """(counts, bin edges) of the absolute error of one output."""
        s = self.outputs[output]
        return np.asarray(s.get("hist_counts", [])), np.asarray(s.get("hist_edges", []))

    def to_dict(self) -> dict:
        return {"runner": self.runner, "baseline": self.baseline, "atol": self.atol, "rtol": self.rtol,
                "passed": self.passed, "samples": self.samples, "batches": self.batches, "outputs": self.outputs,
                "accuracy": self.accuracy, "layers": self.layers, "first_bad_layer": self.first_bad_layer,
                "notes": self.notes}

    def to_dataframe(self):
        """One row per output: errors, cosine, SNR, top-k agreement, pass/fail (no histogram columns)."""
        rows = [{"output": name, **{k: v for k, v in s.items() if k not in HIST_KEYS}}
                for name, s in self.outputs.items()]
        return pandas().DataFrame(rows)

    def per_layer_dataframe(self):
        """One row per compared intermediate tensor, in execution order (per_layer=True only)."""
        if self.layers is None:
            raise WorkbenchError("this comparison ran without per_layer=True; rerun compare(..., per_layer=True)")
        return pandas().DataFrame(self.layers)

    def summary(self) -> str:
        head = (f"{'PASSED' if self.passed else 'FAILED'}: {self.runner} vs {self.baseline} "
                f"(atol={self.atol:g}, rtol={self.rtol:g}, {self.samples} samples in {self.batches} batches)")
        lines = [head]
        for name, s in self.outputs.items():
            if "reason" in s:
                lines.append(f"  {name}: FAILED, {s['reason']}")
                continue
            top = f", top-1 agreement {100 * s['top1']:.1f} %" if "top1" in s else ""
            lines.append(f"  {name}: {'ok' if s['passed'] else 'FAILED'}  max abs {s['max_abs']:.3g}, mean abs "
                         f"{s['mean_abs']:.3g}, max rel {s['max_rel']:.3g}, cosine {s['cosine']:.6f}, "
                         f"SNR {s['snr_db']:.1f} dB, {s['mismatches']}/{s['elements']} out of tolerance{top}")
        if self.accuracy:
            a = self.accuracy
            lines.append(f"  accuracy on {a['output']!r}: {self.runner} {100 * a['runner']:.2f} %, "
                         f"{self.baseline} {100 * a['baseline']:.2f} % (delta {100 * a['delta']:+.2f} points)")
        if self.layers is not None:
            lines.append(f"  per layer: {len(self.layers)} tensors compared; first layer out of tolerance: "
                         f"{self.first_bad_layer or 'none'}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = summary


def match_outputs(names: list, baseline_names: list, output_map: dict | None, runner: str, baseline: str) -> list:
    """[(runner output, baseline output)]: by name, or through output_map {runner name: baseline name}."""
    output_map = dict(output_map or {})
    pairs, missing = [], []
    for name in names:
        other = output_map.get(name, name)
        if other in baseline_names:
            pairs.append((name, other))
        else:
            missing.append(name)
    if missing:
        raise WorkbenchError(f"the outputs of {runner} and {baseline} do not match: {missing} have no counterpart "
                             f"among {sorted(baseline_names)}; pass output_map={{{missing[0]!r}: "
                             f"<baseline output name>}} to pair them")
    return pairs


def _batches(runner, inputs, dataset, batch, seed) -> list:
    if inputs is not None and dataset is not None:
        raise ConfigError("compare: give inputs= or dataset=, not both")
    if dataset is not None:
        names = [s.name for s in runner.input_specs()]
        return list(iter_dataset(dataset, names, batch or 32))
    return [(runner.check_feeds(inputs) if inputs is not None else make_inputs(runner, batch, seed), None)]


def _stack(chunks: list) -> np.ndarray:
    """Batches joined along dim 0, or flattened and joined when their other dims differ."""
    try:
        return np.concatenate([np.atleast_1d(c) for c in chunks]) if len(chunks) > 1 else chunks[0]
    except ValueError:
        return np.concatenate([np.ravel(c) for c in chunks])


def default_baseline_for(runner):
    """The framework baseline for an engine built from an ONNX file that still exists, else None."""
    if isinstance(runner, EngineRunner):
        source = runner.engine.network.metadata.get("source")
        if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
            from ..baselines import default_baseline

            return default_baseline(source)
    return None


def compare(runner, baseline=None, inputs: dict | None = None, *, dataset=None, atol: float = 1e-4,
            rtol: float = 1e-3, per_layer: bool = False, batch: int | None = None, top_k: int = 5,
            output_map: dict | None = None, label_output: str | None = None, seed: int | None = None) -> CompareResult:
    """Compare `runner` (an Engine, plan or Runner) with `baseline` on random inputs, `inputs`, or a dataset.

    dataset: (x, y) arrays, or batches of feeds / (feeds, labels); labels give top-1 accuracy of
    `label_output` (default: the first output). An element passes when |a - b| <= atol + rtol * |b|.

    >>> bool(wb.compare(engine, wb.baselines.OnnxRuntime("model.onnx")))
    """
    runner = as_runner(runner)
    baseline = as_runner(baseline, role="baseline") if baseline is not None else default_baseline_for(runner)
    if baseline is None:
        raise WorkbenchError("compare needs a baseline: pass the ONNX model (path or ModelProto), a torch module, "
                             "or a runner such as wb.baselines.OnnxRuntime(model)")
    batches = _batches(runner, inputs, dataset, batch, seed)
    got, want, labels, pairs = {}, {}, [], None
    for feeds, y in batches:
        out_r, out_b = runner.infer(feeds), baseline.infer(feeds)
        pairs = pairs or match_outputs(list(out_r), list(out_b), output_map, runner.name, baseline.name)
        for name, other in pairs:
            got.setdefault(name, []).append(out_r[name])
            want.setdefault(name, []).append(out_b[other])
        if y is not None:
            labels.append(y)
    stats = {name: {"baseline_output": other, **error_stats(_stack(got[name]), _stack(want[name]), atol, rtol, top_k)}
             for name, other in pairs}
    result = CompareResult(runner.name, baseline.name, atol, rtol, stats,
                           samples=sum(batch_of(feeds) for feeds, _ in batches), batches=len(batches))
    if labels:
        result.accuracy = _accuracy(got, want, pairs, labels, label_output)
    if per_layer:
        result.layers, result.first_bad_layer = per_layer_errors(runner, baseline, batches[0][0], atol, rtol, top_k)
        if result.first_bad_layer is None and not result.passed:
            result.notes.append("outputs differ but no compared intermediate does: the divergence is in tensors "
                                "renamed or fused by the optimizer")
    return result


def _accuracy(got, want, pairs, labels, label_output) -> dict:
    name = label_output or pairs[0][0]
    if name not in got:
        raise WorkbenchError(f"label_output {name!r} is not an output; outputs are {sorted(got)}")
    y = np.concatenate([np.atleast_1d(l) for l in labels])
    ours, theirs = accuracy(_stack(got[name]), y), accuracy(_stack(want[name]), y)
    return {"output": name, "runner": ours, "baseline": theirs, "delta": ours - theirs}


def per_layer_errors(runner, baseline, feeds: dict, atol: float, rtol: float, top_k: int = 5) -> tuple:
    """([row per compared tensor], first layer out of tolerance or None), in execution order."""
    if not isinstance(runner, EngineRunner):
        raise UnsupportedError(f"per_layer=True needs a workbench engine to probe, not {runner.name}")
    _, trace = runner.capture(feeds)
    reference = baseline.intermediates(feeds, [n for _, outs in trace for n in outs])
    if not reference:
        raise WorkbenchError(f"no intermediate tensor of the engine has a same-named tensor in {baseline.name}'s "
                             f"model (the optimizer renamed them all); compare outputs only")
    rows = []
    for layer, outs in trace:
        for name, value in outs.items():
            if name in reference:
                s = error_stats(value, reference[name], atol, rtol, top_k)
                rows.append({"layer": layer.name, "type": layer.op, "fused": list(layer.fused) or [layer.name],
                             "tensor": name, **{k: s.get(k) for k in LAYER_COLUMNS}})
    first_bad = next((r["layer"] for r in rows if not r["passed"]), None)
    return rows, first_bad
