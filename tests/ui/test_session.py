"""The session in code: options, builds and their table, selection, export, and bad input that shows a
message while keeping every earlier result."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import traitlets

import workbench as wb
from workbench.errors import BuildError
from workbench.ui import adapters
from workbench.ui.session import COLUMNS

from .conftest import new_session, slow_build


def snapshot(session):
    return session.results.copy(), list(session.builds), session.selected


def assert_kept(session, before) -> None:
    results, builds, selected = before
    assert session.results.equals(results)
    assert session.builds == builds and session.selected == selected
    assert not session.busy


# ---------------------------------------------------------------------------------- the model and options
def test_model_summary_and_batch_range(fresh, digits):
    s = fresh.summary
    assert s["inputs"] == [("input", "float32", ("batch", 1, 8, 8))]
    assert sum(s["ops"].values()) == s["layers"] == len(fresh.network.layers)
    assert s["params"] == sum(np.asarray(w).size for w in fresh.network.weights.values())
    assert s["flops"] > 1e5
    assert (fresh.batch_min, fresh.batch_max) == (1, adapters.DYNAMIC_BATCH_LIMIT)


def test_options_are_checked(fresh):
    with pytest.raises(traitlets.TraitError, match="outside"):
        fresh.batch = 10_000
    with pytest.raises(traitlets.TraitError, match="not supported"):
        fresh.precision = "fp4"
    with pytest.raises(traitlets.TraitError, match="not available"):
        fresh.device = "tpu"
    with pytest.raises(wb.ConfigError, match="unknown session options"):
        fresh.set(batchsize=4)
    fresh.set(batch=16, workspace=1 << 24, opt_level=1)
    assert fresh.options()["max_batch"] == 16 and fresh.options()["workspace"] == 1 << 24


def test_precisions_follow_the_device(fresh):
    assert fresh.precisions == adapters.supported_precisions("cpu")
    assert {"fp32", "fp16"} <= set(fresh.precisions)


# ---------------------------------------------------------------------------------- builds
def test_each_build_is_a_row_with_its_measurements(built):
    r = built.results
    assert list(r.columns) == COLUMNS
    assert r["kind"].tolist() == ["baseline", "engine", "engine"]
    assert r["build"].tolist() == [0, 1, 2] and built.builds == [1, 2]
    engines = r[r["kind"] == "engine"]
    assert engines["precision"].tolist() == ["fp32", "fp16"] and (engines["batch"] == 8).all()
    assert (r["throughput"] > 0).all()
    assert (r["latency_p50_ms"] <= r["latency_p90_ms"]).all() and (r["latency_p90_ms"] <= r["latency_p99_ms"]).all()
    assert (engines["weights_bytes"].iloc[1] < engines["weights_bytes"].iloc[0])  # fp16 weights are half
    fp32 = engines.iloc[0]
    assert fp32["passed"] and fp32["max_abs"] < 1e-3 and fp32["top1_agreement"] == 1.0
    assert fp32["accuracy"] == pytest.approx(r.iloc[0]["accuracy"], abs=0.02) and fp32["accuracy"] > 0.9
    assert r["pareto"].any()


def test_latencies_and_the_selected_engines_layers(built):
    lat = built.latencies
    assert set(lat["build"]) == {0, 1, 2} and (lat["latency_ms"] > 0).all()
    assert built.selected == 2
    layers = built.layers
    assert len(layers) == len(built.engine(2).layers)
    assert (layers["precision"] == "fp16").any() and layers["time_ms"].notna().all()
    built.select(1)
    assert built.selected == 1 and (built.layers["precision"] == "fp32").all()
    built.select(99)
    assert "no engine with build id 99" in built.error and built.selected == 1
    built.select(2)


def test_build_runs_in_the_background_and_can_be_cancelled(fresh, monkeypatch):
    monkeypatch.setattr(adapters, "build_engine", slow_build)
    before = snapshot(fresh)
    job = fresh.build()
    assert not job.done() and fresh.busy and fresh.task == "build"  # the caller is free at once
    second = fresh.calibrate()
    assert second.done() and "build is running" in fresh.error
    fresh.cancel()
    assert job.wait(10)
    with pytest.raises(wb.CancelledError):
        job.result()
    assert "cancelled" in fresh.message.lower()
    assert_kept(fresh, before)


def test_a_failed_build_shows_a_message_and_keeps_results(built, monkeypatch):
    def refuse(*args, **kwargs):
        raise BuildError("layer 'Conv_1': no tactic fits the workspace limit of 1 KiB; raise the workspace")

    before = snapshot(built)
    monkeypatch.setattr(adapters, "build_engine", refuse)
    job = built.build(workspace=1024)
    job.wait(30)
    assert built.error.startswith("Build failed: layer 'Conv_1': no tactic fits the workspace")
    assert_kept(built, before)


def test_a_workspace_the_builder_refuses(built):
    before = snapshot(built)
    built.build(workspace=0, wait=True)
    if not built.error:
        pytest.skip("this backend's tactics need no workspace: a zero workspace builds")
    assert "workspace" in built.error
    assert_kept(built, before)


def test_bad_option_in_build_is_a_message(built):
    before = snapshot(built)
    job = built.build(batch=100_000)
    assert job.done() and "outside what the model allows" in built.error
    assert_kept(built, before)


# ---------------------------------------------------------------------------------- calibration
def test_a_calibration_folder_with_nothing_usable(built, tmp_path):
    (tmp_path / "notes.txt").write_text("not a batch")
    before = snapshot(built)
    built.calibration_folder = str(tmp_path)
    try:
        built.calibrate(wait=True)
    finally:
        built.calibration_folder = ""
    assert built.error.startswith("Calibrate failed:")
    if adapters._quant_available():
        assert str(tmp_path) in built.error
    assert not built.calibrated
    assert_kept(built, before)


def test_a_missing_calibration_folder(built, tmp_path):
    built.calibration_folder = str(tmp_path / "nope")
    try:
        built.calibrate(wait=True)
    finally:
        built.calibration_folder = ""
    assert "does not exist" in built.error or "workbench.quant" in built.error


@pytest.mark.skipif(not adapters._quant_available(), reason="workbench.quant is not merged yet")
def test_int8_build_calibrates_and_exports_cache_and_qdq(digits, tmp_path):
    s = new_session(digits)
    s.build(precision="int8", batch=8).result(timeout=300)
    assert s.calibrated == "entropy"
    row = s.results.iloc[-1]
    assert row["precision"] == "int8" and row["calibrator"] == "entropy" and row["top1_agreement"] > 0.8
    files = s.export(tmp_path / "digits_int8.plan")
    assert [os.path.basename(f) for f in files] == ["digits_int8.plan", "digits_int8.build.json",
                                                     "digits_int8.calib", "digits_int8.qdq.onnx"]


@pytest.mark.skipif(not adapters._quant_available(), reason="workbench.quant is not merged yet")
def test_fp8_is_offered_and_builds_calibrated(digits):
    """FP8 (E4M3) is on the precision toggle with the others, and calibrates as int8 does."""
    s = new_session(digits)
    assert "fp8" in s.precisions
    s.build(precision="fp8", batch=8).result(timeout=300)
    row = s.results.iloc[-1]
    assert not s.error and row["precision"] == "fp8" and row["calibrator"] == "entropy"
    assert row["top1_agreement"] > 0.8


# ---------------------------------------------------------------------------------- export
def test_export_writes_plan_and_report(built, tmp_path):
    files = built.export(tmp_path / "digits.plan", build_id=2)
    assert files == [str(tmp_path / "digits.plan"), str(tmp_path / "digits.build.json")]
    engine = wb.load_plan(files[0])
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    out = engine.create_execution_context().execute({"input": x})["logits"]
    np.testing.assert_allclose(out, built.engine(2).create_execution_context().execute({"input": x})["logits"])
    report = json.loads((tmp_path / "digits.build.json").read_text())
    assert report["measured"]["precision"] == "fp16" and report["config"]["precision"] == "fp16"
    assert "Exported" in built.message


@pytest.mark.parametrize("where", ["missing-folder", "is-a-file"])
def test_export_to_a_path_that_cannot_be_written(built, tmp_path, where):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = tmp_path / "nope" / "x.plan" if where == "missing-folder" else blocker / "x.plan"
    before = snapshot(built)
    assert built.export(path) == []
    assert built.error.startswith("Export failed:") and str(path.parent) in built.error
    assert_kept(built, before)


def test_export_before_any_build(fresh, tmp_path):
    assert fresh.export(tmp_path / "x.plan") == []
    assert "press Build first" in fresh.error


def test_the_session_imports_no_widgets_or_plotting():
    import subprocess
    import sys

    code = ("import sys, workbench.ui.session, workbench.ui.plots; "
            "assert 'ipywidgets' not in sys.modules, 'ipywidgets'; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot'")
    root = str(Path(__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": root})
