"""Each plot draws what its data says: bar heights, stacks, markers and labels equal the frame's numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from workbench.ui import plots

MIB = 2**20


@pytest.fixture
def results():
    return pd.DataFrame({
        "build": [0, 1, 2, 3], "label": ["ort b8", "#1 fp32 b8", "#2 fp16 b8", "#3 int8 b8"],
        "kind": ["baseline", "engine", "engine", "engine"], "precision": ["fp32", "fp32", "fp16", "int8"],
        "throughput": [900.0, 1200.0, 1500.0, 2500.0], "latency_p50_ms": [4.0, 3.0, 2.5, 1.0],
        "weights_bytes": [4 * MIB, 4 * MIB, 2 * MIB, 1 * MIB], "activations_bytes": [np.nan, 3 * MIB, 1.5 * MIB, MIB],
        "workspace_bytes": [np.nan, 0.5 * MIB, 0.0, 0.25 * MIB], "max_abs": [0.0, 1e-6, 2e-3, 5e-2],
        "top1_agreement": [np.nan, 1.0, 1.0, 0.97], "accuracy": [0.99, 0.99, 0.985, 0.95],
        "inferences_per_joule": [np.nan, 40.0, 55.0, 90.0], "pareto": [False, False, True, True],
    })


@pytest.fixture
def layers():
    return pd.DataFrame({
        "name": ["conv1", "relu1", "conv2", "relu2", "fc"], "type": ["Conv", "Relu", "Conv", "Relu", "Gemm"],
        "precision": ["int8", "fp16", "int8", "fp16", "fp32"], "time_ms": [0.5, 0.05, 0.8, 0.04, 0.2],
    })


def bar_heights(ax) -> list:
    return [p.get_height() for p in ax.patches]


def test_throughput_bars_equal_the_data(results):
    ax = plots.throughput(results).axes[0]
    assert bar_heights(ax) == results["throughput"].tolist()
    assert [t.get_text() for t in ax.get_xticklabels()] == results["label"].tolist()
    colors = [p.get_facecolor() for p in ax.patches]
    assert colors[0] != colors[1]  # the baseline stands apart


def test_latency_bars_are_the_percentiles_and_every_sample_is_drawn():
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2.0, 1.0, 200), rng.gamma(3.0, 0.5, 120)
    frame = pd.DataFrame({"label": ["A"] * a.size + ["B"] * b.size, "latency_ms": np.concatenate([a, b])})
    ax = plots.latency(frame).axes[0]
    heights = bar_heights(ax)
    np.testing.assert_allclose(heights[:3], np.percentile(a, plots.PERCENTILES))
    np.testing.assert_allclose(heights[3:], np.percentile(b, plots.PERCENTILES))
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in dots] == [a.size, b.size]
    np.testing.assert_allclose(np.sort(dots[0].get_offsets()[:, 1]), np.sort(a))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["p50", "p90", "p99"]


def test_memory_is_stacked_weights_activations_workspace(results):
    ax = plots.memory(results).axes[0]
    n = len(results)
    parts = [np.nan_to_num(results[c].to_numpy(float)) / MIB for c, _ in plots.MEMORY_PARTS]
    patches = ax.patches
    for j, values in enumerate(parts):
        drawn = patches[j * n:(j + 1) * n]
        np.testing.assert_allclose([p.get_height() for p in drawn], values)
        np.testing.assert_allclose([p.get_y() for p in drawn], sum(parts[:j]) if j else np.zeros(n))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["weights", "activations", "workspace"]


def test_accuracy_shows_errors_of_engines_and_the_baseline_accuracy(results):
    left, right = plots.accuracy(results).axes
    engines = results[results["kind"] == "engine"]
    np.testing.assert_allclose(bar_heights(left), engines["max_abs"])
    assert left.get_yscale() == "log"
    np.testing.assert_allclose(bar_heights(right), 100 * engines["accuracy"])
    (line,) = right.get_lines()
    assert line.get_ydata()[0] == pytest.approx(99.0)


def test_accuracy_falls_back_to_top1_agreement_without_labels(results):
    right = plots.accuracy(results.assign(accuracy=np.nan)).axes[1]
    np.testing.assert_allclose(bar_heights(right), [100.0, 100.0, 97.0])
    assert "agreement" in right.get_title()


def test_efficiency_bars_or_a_note_when_unmeasured(results):
    np.testing.assert_allclose(bar_heights(plots.efficiency(results).axes[0]), [0, 40, 55, 90])
    ax = plots.efficiency(results.assign(inferences_per_joule=np.nan)).axes[0]
    assert not ax.patches and "not measured" in ax.texts[0].get_text()


def test_pareto_highlights_the_flagged_builds(results):
    ax = plots.pareto(results).axes[0]
    dominated, front = [c.get_offsets() for c in ax.collections]
    flagged = results[results["pareto"]]
    np.testing.assert_allclose(front, np.column_stack([flagged["latency_p50_ms"], 1 - flagged["accuracy"]]))
    assert len(dominated) == len(results) - len(flagged)
    assert [a.get_text() for a in ax.texts] == results["label"].tolist()


def test_layer_time_by_type_sums_per_type(layers):
    ax = plots.layer_time_by_type(layers).axes[0]
    widths = {t.get_text(): p.get_width() for t, p in zip(ax.get_yticklabels(), ax.patches)}
    assert widths == pytest.approx({"Conv": 1.3, "Relu": 0.09, "Gemm": 0.2})


def test_precision_rollup_counts_layers_and_time(layers):
    left, right = plots.precision_rollup(layers).axes
    counts = {t.get_text(): p.get_height() for t, p in zip(left.get_xticklabels(), left.patches)}
    times = {t.get_text(): p.get_height() for t, p in zip(right.get_xticklabels(), right.patches)}
    assert counts == {"int8": 2, "fp16": 2, "fp32": 1}
    assert times == pytest.approx({"int8": 1.3, "fp16": 0.09, "fp32": 0.2})


def test_slowest_layers_are_sorted_with_the_slowest_on_top(layers):
    ax = plots.slowest_layers(layers, n=3).axes[0]
    assert [p.get_width() for p in ax.patches] == [0.2, 0.5, 0.8]
    assert ax.get_yticklabels()[-1].get_text() == "conv2 (Conv)"


def test_sensitivity_bars_are_the_drops_worst_on_top():
    table = pd.DataFrame({"layer": ["c1", "c2", "fc"], "op": ["Conv", "Conv", "Gemm"], "flops": [10, 20, 5],
                          "score": [98.0, 96.5, 99.0], "score_drop": [1.0, 2.5, 0.0]})
    ax = plots.sensitivity(table).axes[0]
    assert [p.get_width() for p in ax.patches] == [0.0, 1.0, 2.5]
    assert ax.get_yticklabels()[-1].get_text() == "c2 (Conv)"


def test_op_histogram_and_layer_compare(layers):
    ops = pd.DataFrame({"op": ["Conv", "Relu", "Gemm"], "count": [3, 3, 1]})
    assert sorted(p.get_width() for p in plots.op_histogram(ops).axes[0].patches) == [1, 3, 3]
    other = layers.assign(time_ms=layers["time_ms"] * 2)
    ax = plots.layer_compare(layers, other, names=("fp16", "int8")).axes[0]
    n = 3
    a, b = [p.get_width() for p in ax.patches[:n]], [p.get_width() for p in ax.patches[n:]]
    np.testing.assert_allclose(np.array(b), 2 * np.array(a))


@pytest.mark.parametrize("fn", [plots.throughput, plots.memory, plots.accuracy, plots.efficiency, plots.pareto])
def test_empty_results_say_what_to_do(fn, results):
    fig = fn(results.iloc[:0])
    assert any("Build" in t.get_text() or "not measured" in t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.mark.parametrize("fn", [plots.layer_time_by_type, plots.precision_rollup, plots.slowest_layers])
def test_empty_layers_say_no_engine(fn):
    fig = fn(pd.DataFrame())
    assert any("no engine" in t.get_text() for ax in fig.axes for t in ax.texts)


def test_figures_render_as_png_for_jupyter(results):
    fig = plots.throughput(results)
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
