"""Plots of the workbench: pure functions DataFrame -> matplotlib Figure, no state, no pyplot.

Figures are drawn on the Agg canvas (no display needed) and show themselves in Jupyter as PNG.
The frames are the session's: `results` (one row per build), `latencies` (build, label,
latency_ms) and an engine's per-layer frame (engine.inspect().to_dataframe()).

    >>> plots.throughput(session.results)
    >>> plots.slowest_layers(engine.inspect().profile().to_dataframe(), n=5)
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MIB = 1 << 20
PERCENTILES = (50, 90, 99)
COLORS = {"engine": "#1f77b4", "baseline": "#7f7f7f"}
PRECISION_COLORS = {"fp32": "#1f77b4", "tf32": "#17becf", "fp16": "#2ca02c", "bf16": "#bcbd22",
                    "int8": "#d62728", "fp8": "#9467bd"}


class PlotFigure(Figure):
    """A Figure on the Agg canvas that Jupyter displays as a PNG image."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def to_png(self, dpi: int = 80) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.to_png()


def _figure(ncols: int = 1, width: float = 6.0, height: float = 3.2) -> tuple:
    fig = PlotFigure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _empty(fig, ax, text: str):
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    return fig


def _bar_colors(frame) -> list:
    kinds = frame["kind"] if "kind" in frame else ["engine"] * len(frame)
    return [COLORS.get(k, COLORS["engine"]) for k in kinds]


def labels(frame) -> list:
    """Row labels: the `label` column (the session's), else runner / precision / batch (a sweep's table)."""
    if "label" in frame:
        return [str(v) for v in frame["label"]]
    parts = [c for c in ("runner", "precision", "batch") if c in frame]
    return [" ".join(str(v) for v in row) for row in frame[parts].itertuples(index=False)] if parts \
        else [str(i) for i in frame.index]


def _bars(ax, frame, values, **kwargs) -> None:
    """One bar per row at positions 0..n-1 (rows with equal labels stay apart), labels as ticks."""
    ax.bar(np.arange(len(frame)), values, **kwargs)
    ax.set_xticks(np.arange(len(frame)), labels(frame), rotation=30, ha="right")


def _values(frame, column: str) -> np.ndarray:
    return frame[column].astype(float).to_numpy() if column in frame else np.full(len(frame), np.nan)


# ---------------------------------------------------------------------------------- across builds
def throughput(results) -> PlotFigure:
    """Inferences per second of every build (baselines in grey)."""
    fig, (ax,) = _figure()
    if results.empty:
        return _empty(fig, ax, "no builds yet: press Build")
    _bars(ax, results, _values(results, "throughput"), color=_bar_colors(results))
    ax.set(title="Throughput", ylabel="inferences / s")
    return fig


def latency(latencies) -> PlotFigure:
    """Latency distribution per build: every timed inference as a dot, and bars at p50 / p90 / p99."""
    fig, (ax,) = _figure()
    if latencies.empty:
        return _empty(fig, ax, "no latencies yet: press Build")
    names = list(dict.fromkeys(latencies["label"]))
    width = 0.8 / len(PERCENTILES)
    rng = np.random.default_rng(0)
    for i, label in enumerate(names):
        ms = latencies.loc[latencies["label"] == label, "latency_ms"].astype(float).to_numpy()
        for j, (p, value) in enumerate(zip(PERCENTILES, np.percentile(ms, PERCENTILES))):
            ax.bar(i + (j - 1) * width, value, width, color=f"C{j}", alpha=0.75,
                   label=f"p{p}" if i == 0 else None)
        ax.scatter(i + rng.uniform(-0.4, 0.4, ms.size), ms, s=4, color="black", alpha=0.3, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set(title="Latency distribution", ylabel="ms per inference")
    ax.legend(loc="upper left", fontsize="small")
    return fig


MEMORY_PARTS = (("weights_bytes", "weights"), ("activations_bytes", "activations"), ("workspace_bytes", "workspace"))


def memory(results) -> PlotFigure:
    """Device memory of every build, stacked: weights, activations, workspace (MiB)."""
    fig, (ax,) = _figure()
    if results.empty:
        return _empty(fig, ax, "no builds yet: press Build")
    bottom = np.zeros(len(results))
    for j, (column, name) in enumerate(MEMORY_PARTS):
        values = np.nan_to_num(_values(results, column)) / MIB
        _bars(ax, results, values, bottom=bottom, label=name, color=f"C{j}")
        bottom += values
    ax.set(title="Memory", ylabel="MiB")
    ax.legend(fontsize="small")
    return fig


def accuracy(results) -> PlotFigure:
    """Error against the framework baseline (max |difference|, log scale) and agreement / accuracy (%)."""
    fig, (left, right) = _figure(ncols=2, width=4.5)
    engines = results[results["kind"] == "engine"] if "kind" in results else results
    if engines.empty or engines["max_abs"].isna().all():
        _empty(fig, right, "")
        return _empty(fig, left, "no comparison yet: press Build (with a baseline)")
    errors = np.maximum(_values(engines, "max_abs"), 1e-12)  # exact agreement still shows on a log axis
    _bars(left, engines, errors, color=_bar_colors(engines))
    left.set(title="Max |error| vs baseline", yscale="log")
    measured = "accuracy" if engines["accuracy"].notna().any() else "top1_agreement"
    _bars(right, engines, 100 * _values(engines, measured), color=_bar_colors(engines))
    baseline = results.loc[results.get("kind") == "baseline", "accuracy"].dropna() if "kind" in results else []
    if measured == "accuracy" and len(baseline):
        right.axhline(100 * float(baseline.iloc[-1]), color=COLORS["baseline"], ls="--", label="baseline")
        right.legend(fontsize="small")
    right.set(title="Top-1 accuracy" if measured == "accuracy" else "Top-1 agreement with baseline",
              ylabel="%", ylim=(0, 105))
    return fig


def efficiency(results) -> PlotFigure:
    """Inferences per joule where energy was measured (NVIDIA GPUs through NVML, or RAPL on the CPU)."""
    fig, (ax,) = _figure()
    values = _values(results, "inferences_per_joule")
    if results.empty or np.isnan(values).all():
        return _empty(fig, ax, "energy not measured on this device\n(needs NVML on an NVIDIA GPU or RAPL counters)")
    _bars(ax, results, np.nan_to_num(values), color=_bar_colors(results))
    ax.set(title="Efficiency", ylabel="inferences / J")
    return fig


def error_measure(results) -> tuple:
    """(name, values) of the error a Pareto plot minimizes: 1 - accuracy when known, else max |error|."""
    if "accuracy" in results and results["accuracy"].notna().all():
        return "1 - accuracy", 1 - _values(results, "accuracy")
    return "max |error| vs baseline", _values(results, "max_abs")


def pareto(results, x: str = "latency_p50_ms") -> PlotFigure:
    """Latency against error for every build; the Pareto-optimal ones (results["pareto"]) highlighted."""
    fig, (ax,) = _figure()
    name, error = error_measure(results)
    if results.empty or np.isnan(error).all():
        return _empty(fig, ax, "no comparison yet: press Build (with a baseline)")
    lat = _values(results, x)
    front = results["pareto"].fillna(False).astype(bool).to_numpy() if "pareto" in results \
        else np.zeros(len(results), bool)
    ax.scatter(lat[~front], error[~front], color="#999999", label="dominated")
    ax.scatter(lat[front], error[front], color="#d62728", label="Pareto-optimal", zorder=3)
    order = np.argsort(lat[front])
    ax.plot(lat[front][order], error[front][order], color="#d62728", lw=1)
    for xi, yi, label in zip(lat, error, labels(results)):
        ax.annotate(str(label), (xi, yi), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
    ax.set(title="Latency vs error", xlabel=x.replace("_", " "), ylabel=name)
    ax.legend(fontsize="small")
    return fig


# ---------------------------------------------------------------------------------- one engine, per layer
def _layer_times(layers):
    return layers["time_ms"].astype(float).fillna(0.0) if "time_ms" in layers else None


def layer_time_by_type(layers) -> PlotFigure:
    """Total measured time per layer type (TREx's 'latency by layer type')."""
    fig, (ax,) = _figure()
    times = _layer_times(layers)
    if layers.empty or times is None:
        return _empty(fig, ax, "no engine selected")
    by_type = times.groupby(layers["type"]).sum().sort_values()
    ax.barh(by_type.index, by_type.to_numpy(), color="C0")
    ax.set(title="Time by layer type", xlabel="ms")
    return fig


def precision_rollup(layers) -> PlotFigure:
    """Layers and time per precision: how much of the engine runs at each."""
    fig, (left, right) = _figure(ncols=2, width=3.5)
    times = _layer_times(layers)
    if layers.empty or times is None:
        _empty(fig, right, "")
        return _empty(fig, left, "no engine selected")
    counts = layers["precision"].value_counts()
    spent = times.groupby(layers["precision"]).sum().reindex(counts.index)
    colors = [PRECISION_COLORS.get(p, "C7") for p in counts.index]
    left.bar(counts.index, counts.to_numpy(), color=colors)
    left.set(title="Layers per precision", ylabel="layers")
    right.bar(spent.index, spent.to_numpy(), color=colors)
    right.set(title="Time per precision", ylabel="ms")
    return fig


def slowest_layers(layers, n: int = 10) -> PlotFigure:
    """The n layers that take the most time, slowest on top, labelled with their type."""
    fig, (ax,) = _figure(height=max(2.5, 0.3 * n))
    times = _layer_times(layers)
    if layers.empty or times is None:
        return _empty(fig, ax, "no engine selected")
    top = layers.assign(_t=times).nlargest(n, "_t").iloc[::-1]
    ax.barh([f"{name} ({kind})" for name, kind in zip(top["name"], top["type"])], top["_t"].to_numpy(),
            color=[PRECISION_COLORS.get(p, "C7") for p in top["precision"]])
    ax.set(title=f"Slowest {len(top)} layers", xlabel="ms")
    return fig


def sensitivity(table, n: int = 15) -> PlotFigure:
    """The score each layer loses when it alone is quantized (wb.quant.sensitivity's table), worst on top."""
    fig, (ax,) = _figure(height=max(2.5, 0.3 * min(n, len(table))))
    if table.empty:
        return _empty(fig, ax, "no quantizable layers")
    top = table.nlargest(n, "score_drop").iloc[::-1]
    ax.barh([f"{layer} ({op})" for layer, op in zip(top["layer"], top["op"])], top["score_drop"].to_numpy(),
            color="#d62728")
    ax.set(title="Sensitivity: score lost with only this layer quantized", xlabel="score drop")
    return fig


def op_histogram(ops) -> PlotFigure:
    """Layer count per op type of a model; `ops` has columns op and count."""
    fig, (ax,) = _figure(width=4.5, height=max(2.0, 0.25 * len(ops)))
    if ops.empty:
        return _empty(fig, ax, "no layers")
    ordered = ops.sort_values("count")
    ax.barh(ordered["op"], ordered["count"].to_numpy(), color="C0")
    ax.set(title="Op types", xlabel="layers")
    return fig


def layer_compare(a, b, names: tuple = ("A", "B")) -> PlotFigure:
    """Time per layer type of two engines side by side (e.g. two plan files)."""
    fig, (ax,) = _figure()
    ta, tb = _layer_times(a), _layer_times(b)
    if ta is None or tb is None:
        return _empty(fig, ax, "both engines need measured layer times (inspect().profile())")
    both = ta.groupby(a["type"]).sum().to_frame(names[0]).join(tb.groupby(b["type"]).sum().rename(names[1]),
                                                               how="outer").fillna(0.0)
    both = both.loc[both.sum(axis=1).sort_values().index]
    y = np.arange(len(both))
    ax.barh(y - 0.2, both[names[0]].to_numpy(), 0.4, label=names[0])
    ax.barh(y + 0.2, both[names[1]].to_numpy(), 0.4, label=names[1])
    ax.set_yticks(y, both.index)
    ax.set(title="Time by layer type", xlabel="ms")
    ax.legend(fontsize="small")
    return fig
