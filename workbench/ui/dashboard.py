"""The notebook dashboard: ipywidgets linked to a Session. Widgets hold no logic: each control is
linked to a session trait, each button is one call into the session, and the views redraw from
the session's tables with the pure functions of plots.py.

    >>> w = wb.ui.Workbench(d.model, calibration_data=d.x_calib, eval_data=(d.x_test, d.y_test))
    >>> w                      # in a notebook cell: model panel, controls, results, export
    >>> w.session.results      # the same table, as a DataFrame
"""
from __future__ import annotations

import html
from types import SimpleNamespace

import ipywidgets as W
import traitlets

from . import plots
from .session import Session

# Plot tabs: title -> (plot function, the session frame it draws).
RESULT_PLOTS = {
    "Throughput": (plots.throughput, "results"),
    "Latency": (plots.latency, "latencies"),
    "Memory": (plots.memory, "results"),
    "Accuracy": (plots.accuracy, "results"),
    "Efficiency": (plots.efficiency, "results"),
    "Pareto": (plots.pareto, "results"),
    "Layer types": (plots.layer_time_by_type, "layers"),
    "Precisions": (plots.precision_rollup, "layers"),
    "Slowest layers": (plots.slowest_layers, "layers"),
}
# Columns of the on-screen table (the session's DataFrame has them all) and how to show them.
TABLE = {"label": "build", "device": "device", "precision": "precision", "batch": "batch",
         "throughput": "inf/s", "latency_p50_ms": "p50 ms", "latency_p99_ms": "p99 ms",
         "peak_bytes": "memory MiB", "max_abs": "max |err|", "top1_agreement": "top-1 agree",
         "accuracy": "accuracy", "pareto": "Pareto"}
FORMATS = {"throughput": "{:.0f}", "latency_p50_ms": "{:.3f}", "latency_p99_ms": "{:.3f}", "max_abs": "{:.2e}",
           "top1_agreement": "{:.1%}", "accuracy": "{:.1%}", "peak_bytes": lambda v: f"{v / 2**20:.2f}",
           "pareto": lambda v: "★" if v else ""}
WORKSPACE_EXP = (16, 34)   # log2 of the workspace slider's range: 64 KiB .. 16 GiB


def _labelled(cls, description: str, css: str, **kwargs):
    widget = cls(description=description, style={"description_width": "110px"}, **kwargs)
    widget.add_class(css)
    return widget


def _button(description: str, css: str, style: str = "", icon: str = ""):
    button = W.Button(description=description, button_style=style, icon=icon)
    button.add_class(css)
    return button


def _cell(column: str, value) -> str:
    if value is None or value != value:  # None or NaN
        return ""
    fmt = FORMATS.get(column)
    try:
        return fmt(value) if callable(fmt) else fmt.format(value) if fmt else str(value)
    except (TypeError, ValueError):
        return str(value)


def results_html(results) -> str:
    """The results table as HTML (one row per build), the way the dashboard shows it."""
    columns = [c for c in TABLE if c in results]
    head = "".join(f"<th>{TABLE[c]}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c, row[c]))}</td>" for c in columns) + "</tr>"
                   for _, row in results.iterrows())
    if not body:
        body = f"<tr class='wb-empty'><td colspan={len(columns)}>no builds yet: press Build</td></tr>"
    return (f"<table class='wb-results-table' style='border-collapse:collapse;font-size:12px'>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def model_html(summary: dict) -> str:
    """The model panel's text: inputs, outputs, layer and parameter counts, FLOPs."""
    io = lambda rows: "".join(f"<li><code>{html.escape(n)}</code> {d} {list(s) if s else '?'}</li>"  # noqa: E731
                              for n, d, s in rows)
    flops = summary.get("flops")
    return (f"<b>{html.escape(summary['name'])}</b><br>Inputs:<ul>{io(summary['inputs'])}</ul>"
            f"Outputs:<ul>{io(summary['outputs'])}</ul>{summary['layers']} layers, "
            f"{summary['params']:,} parameters ({summary['param_bytes'] / 2**20:.2f} MiB), "
            + (f"{flops / 1e6:,.2f} MFLOP per sample" if flops else "FLOPs unknown"))


def status_html(message: str, error: str) -> str:
    if error:
        return f"<span style='color:#b00020'>⚠ {html.escape(error)}</span>"
    return f"<span style='color:#2e7d32'>{html.escape(message)}</span>" if message else ""


class Workbench:
    """Widgets for a Session: model panel, build controls, results table and plots, export.

    Accepts the Session's arguments (model, baseline, calibration_data, eval_data, options) or a Session.
    """

    def __init__(self, model, baseline=None, calibration_data=None, eval_data=None, **options):
        self.session = model if isinstance(model, Session) else \
            Session(model, baseline=baseline, calibration_data=calibration_data, eval_data=eval_data, **options)
        self.controls = self._controls()
        self.views = self._views()
        self._link()
        self._stale = set(RESULT_PLOTS)
        self.widget = W.VBox([self._model_panel(), self._control_panel(), self.views.status, self._result_panel(),
                              self._export_panel()])
        self.widget.add_class("wb-dashboard")
        self._results_changed()

    # ------------------------------------------------------------------------------ widgets
    def _controls(self) -> SimpleNamespace:
        s = self.session
        return SimpleNamespace(
            device=_labelled(W.Dropdown, "device", "wb-device", options=s.devices),
            batch=_labelled(W.IntSlider, "batch", "wb-batch", min=s.batch_min, max=s.batch_max,
                            continuous_update=False),
            workspace=_labelled(W.FloatLogSlider, "workspace", "wb-workspace", base=2, min=WORKSPACE_EXP[0],
                                max=WORKSPACE_EXP[1], step=1, readout=False, continuous_update=False),
            workspace_text=W.Label(),
            precision=_labelled(W.ToggleButtons, "precision", "wb-precision", options=s.precisions),
            calibrator=_labelled(W.Dropdown, "calibrator", "wb-calibrator", options=s.calibrators),
            calibration_folder=_labelled(W.Text, "calib. folder", "wb-calib-folder",
                                         placeholder="(the calibration data given) or a folder of .npy/.npz"),
            calibrate=_button("Calibrate", "wb-calibrate", icon="sliders"),
            opt_level=_labelled(W.IntSlider, "opt level", "wb-opt-level", min=0, max=5),
            timing_iterations=_labelled(W.IntSlider, "timing iters", "wb-timing", min=1, max=50),
            build=_button("Build", "wb-build", style="primary", icon="cogs"),
            cancel=_button("Cancel", "wb-cancel", style="warning", icon="stop"),
            progress=W.FloatProgress(min=0.0, max=1.0, layout=W.Layout(width="240px")),
            stage=W.Label(),
        )

    def _views(self) -> SimpleNamespace:
        images = {title: W.Image(format="png", layout=W.Layout(max_width="720px")) for title in RESULT_PLOTS}
        for image in images.values():
            image.add_class("wb-plot")
        tabs = W.Tab(children=list(images.values()), titles=list(images))
        views = SimpleNamespace(status=W.HTML(), table=W.HTML(), images=images, tabs=tabs,
                                selected=_labelled(W.Dropdown, "engine", "wb-selected", options=[]),
                                export_name=_labelled(W.Text, "file name", "wb-export-name",
                                                      placeholder=f"{self.session.model_name}.plan"),
                                export=_button("Export", "wb-export", style="success", icon="download"),
                                exported=W.HTML())
        views.status.add_class("wb-status")
        views.table.add_class("wb-results")
        return views

    def _model_panel(self):
        s = self.session
        import pandas as pd

        ops = pd.DataFrame({"op": list(s.summary["ops"]), "count": list(s.summary["ops"].values())})
        histogram = W.Image(value=plots.op_histogram(ops).to_png(), format="png")
        return W.HBox([W.HTML(model_html(s.summary)), histogram], layout=W.Layout(align_items="flex-start"))

    def _control_panel(self):
        c = self.controls
        return W.VBox([c.device, c.batch, W.HBox([c.workspace, c.workspace_text]), c.precision,
                       W.HBox([c.calibrator, c.calibration_folder, c.calibrate]), c.opt_level, c.timing_iterations,
                       W.HBox([c.build, c.cancel, c.progress, c.stage])])

    def _result_panel(self):
        v = self.views
        return W.VBox([W.HTML("<b>Results</b>"), v.table, v.selected, v.tabs])

    def _export_panel(self):
        v = self.views
        return W.VBox([W.HBox([v.export_name, v.export]), v.exported])

    # ------------------------------------------------------------------------------ links and callbacks
    def _link(self) -> None:
        s, c, v = self.session, self.controls, self.views
        for name in ("device", "batch", "precision", "calibrator", "calibration_folder", "opt_level",
                     "timing_iterations"):
            traitlets.link((s, name), (getattr(c, name), "value"))
        traitlets.dlink((s, "precisions"), (c.precision, "options"))
        traitlets.link((s, "workspace"), (c.workspace, "value"), transform=(float, lambda v: int(round(v))))
        traitlets.dlink((s, "workspace"), (c.workspace_text, "value"), transform=lambda b: f"{b / 2**20:,.0f} MiB")
        traitlets.dlink((s, "progress"), (c.progress, "value"))
        traitlets.dlink((s, "stage"), (c.stage, "value"))
        traitlets.dlink((s, "busy"), (c.build, "disabled"))
        traitlets.dlink((s, "busy"), (c.calibrate, "disabled"))
        traitlets.dlink((s, "busy"), (c.cancel, "disabled"), transform=lambda busy: not busy)
        c.build.on_click(lambda _: s.build())
        c.calibrate.on_click(lambda _: s.calibrate())
        c.cancel.on_click(lambda _: s.cancel())
        v.export.on_click(lambda _: self._show_export(s.export(v.export_name.value or None)))
        v.selected.observe(lambda ch: s.select(ch.new) if ch.new is not None else None, "value")
        v.tabs.observe(lambda _: self._render_visible(), "selected_index")
        s.observe(lambda _: self._status_changed(), ["message", "error"])
        s.observe(lambda _: self._results_changed(), "results")
        s.observe(lambda _: self._layers_changed(), "layers")
        s.observe(lambda ch: self._selection_changed(ch.new), "selected")

    def _show_export(self, files: list) -> None:
        self.views.exported.value = "".join(f"<div><code>{html.escape(f)}</code></div>" for f in files)

    def _status_changed(self) -> None:
        self.views.status.value = status_html(self.session.message, self.session.error)

    def _results_changed(self) -> None:
        s, v = self.session, self.views
        v.table.value = results_html(s.results)
        engines = s.results[s.results["kind"] == "engine"]
        selected = s.selected  # new options reset the dropdown (and through it the session): restore after
        v.selected.options = [(label, int(b)) for label, b in zip(engines["label"], engines["build"])]
        v.selected.value = selected if selected in s.builds else None
        self._stale |= {title for title, (_, frame) in RESULT_PLOTS.items() if frame != "layers"}
        self._render_visible()

    def _selection_changed(self, build_id: int) -> None:
        if build_id in dict(self.views.selected.options).values():
            self.views.selected.value = build_id

    def _layers_changed(self) -> None:
        self._stale |= {title for title, (_, frame) in RESULT_PLOTS.items() if frame == "layers"}
        self._render_visible()

    def _render_visible(self) -> None:
        """Redraw the plot on the visible tab if its data changed (hidden tabs redraw when shown)."""
        title = list(RESULT_PLOTS)[self.views.tabs.selected_index or 0]
        if title in self._stale:
            self._stale.discard(title)
            self.render(title)

    def render(self, title: str) -> bytes:
        """Draw one plot tab from the session's current data; returns the PNG."""
        fn, frame = RESULT_PLOTS[title]
        png = fn(getattr(self.session, frame)).to_png()
        self.views.images[title].value = png
        return png

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"Workbench({self.session!r})"
