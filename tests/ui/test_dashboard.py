"""The dashboard in code: controls follow the session, buttons are clicked with widget.click(), and the
table, plots and messages show what the session holds."""
from __future__ import annotations

import re

import pytest

from workbench.ui import adapters, plots
from workbench.ui.dashboard import RESULT_PLOTS, Workbench, results_html

from .conftest import new_session, slow_build

TIMEOUT = 120


def rows(html: str) -> int:
    return len(re.findall(r"<tr>", html.split("<tbody>")[1]))


@pytest.fixture(scope="module")
def dash(digits):
    return Workbench(new_session(digits))


def with_a_build(dash) -> Workbench:
    """The dashboard with at least one engine built: the build test's, or one of its own where this test
    runs on another xdist worker (the module's dashboard is one per worker)."""
    if "no builds yet" in results_html(dash.session.results):
        dash.controls.build.click()
        assert dash.session.wait(TIMEOUT) and not dash.session.error
    return dash


def test_controls_start_from_the_session(dash):
    s, c = dash.session, dash.controls
    assert c.batch.value == s.batch and (c.batch.min, c.batch.max) == (s.batch_min, s.batch_max)
    assert list(c.precision.options) == s.precisions and c.precision.value == s.precision
    assert list(c.device.options) == s.devices
    assert c.workspace.value == s.workspace and c.workspace_text.value == "1,024 MiB"
    assert list(c.calibrator.options) == list(adapters.CALIBRATORS)
    assert c.cancel.disabled and not c.build.disabled
    assert "no builds yet" in dash.views.table.value


def test_moving_controls_sets_the_session(dash):
    s, c = dash.session, dash.controls
    c.batch.value = 16
    c.workspace.value = 2.0**24
    c.precision.value = "fp16"
    c.opt_level.value = 2
    c.timing_iterations.value = 4
    assert (s.batch, s.workspace, s.precision, s.opt_level, s.timing_iterations) == (16, 1 << 24, "fp16", 2, 4)
    assert c.workspace_text.value == "16 MiB"
    s.precision = "fp32"  # and back: the session drives the widgets too
    assert c.precision.value == "fp32"


def test_build_click_adds_a_row_plots_and_a_selection(dash):
    dash.controls.batch.value = 4
    dash.controls.build.click()
    assert dash.session.wait(TIMEOUT) and not dash.session.error
    table = dash.views.table.value
    assert rows(table) == 2  # the baseline at batch 4 and the build
    assert "#1 fp32 b4" in table
    assert dash.views.selected.value == 1 and [o[0] for o in dash.views.selected.options] == ["#1 fp32 b4"]
    png = dash.views.images["Throughput"].value
    assert png == plots.throughput(dash.session.results).to_png()
    assert "Built #1 fp32 b4" in dash.views.status.value
    dash.controls.precision.value = "fp16"
    dash.controls.build.click()
    assert dash.session.wait(TIMEOUT)
    assert rows(dash.views.table.value) == 3 and dash.views.selected.value == 2


def test_tabs_draw_the_selected_engines_layers(dash):
    with_a_build(dash)
    titles = list(RESULT_PLOTS)
    dash.views.tabs.selected_index = titles.index("Slowest layers")
    png = dash.views.images["Slowest layers"].value
    assert png == plots.slowest_layers(dash.session.layers).to_png()
    dash.views.selected.value = 1  # choosing an engine in the dropdown selects it in the session
    assert dash.session.selected == 1 and (dash.session.layers["precision"] == "fp32").all()
    assert dash.views.images["Slowest layers"].value == plots.slowest_layers(dash.session.layers).to_png()
    dash.views.tabs.selected_index = 0


def test_export_click_writes_files_and_shows_them(dash, tmp_path):
    with_a_build(dash)
    dash.views.export_name.value = str(tmp_path / "digits.plan")
    dash.views.export.click()
    assert (tmp_path / "digits.plan").is_file() and (tmp_path / "digits.build.json").is_file()
    assert "digits.plan" in dash.views.exported.value and "Exported" in dash.views.status.value


def test_export_to_an_unwritable_path_shows_the_error(dash, tmp_path):
    before = dash.views.table.value
    dash.views.export_name.value = str(tmp_path / "missing" / "digits.plan")
    dash.views.export.click()
    assert "Export failed" in dash.views.status.value and "color:#b00020" in dash.views.status.value
    assert dash.views.table.value == before and dash.views.exported.value == ""


def test_bad_calibration_folder_shows_the_error(dash, tmp_path):
    before = dash.views.table.value
    dash.controls.calibration_folder.value = str(tmp_path)
    dash.controls.calibrate.click()
    assert dash.session.wait(TIMEOUT)
    dash.controls.calibration_folder.value = ""
    assert "Calibrate failed" in dash.views.status.value
    assert dash.views.table.value == before


def test_cancel_button_stops_a_build(dash, monkeypatch):
    monkeypatch.setattr(adapters, "build_engine", slow_build)
    before = dash.views.table.value
    dash.controls.build.click()
    assert dash.controls.build.disabled and not dash.controls.cancel.disabled
    dash.controls.cancel.click()
    assert dash.session.wait(10)
    assert not dash.controls.build.disabled and dash.controls.cancel.disabled
    assert "cancelled" in dash.views.status.value and dash.views.table.value == before


def test_results_html_formats_numbers(dash):
    html = results_html(with_a_build(dash).session.results)
    assert "<th>inf/s</th>" in html and "★" in html
