"""The command line, end to end on a tiny Add/Relu ONNX model: build -> run -> inspect, and its errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench import cli
from workbench.errors import WorkbenchError

ROOT = Path(__file__).resolve().parents[1]
BIAS = np.linspace(-1, 1, 4, dtype=np.float32)


def relu_add(x: np.ndarray) -> np.ndarray:
    return np.maximum(x + BIAS, 0)


@pytest.fixture
def model(tmp_path) -> Path:
    """y = relu(x + b), x: float32 (batch, 4)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(BIAS, "b")])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture
def plan(model, tmp_path) -> Path:
    out = tmp_path / "tiny.plan"
    assert cli.main(["build", str(model), "-o", str(out), "--shapes", "x:1x4,2x4,8x4", "-q"]) == 0
    return out


def test_build_writes_a_plan_and_reports_it(model, tmp_path, capsys):
    out = tmp_path / "built.plan"
    assert cli.main(["build", str(model), "-o", str(out), "--shapes", "x:1x4,2x4,8x4", "-q"]) == 0
    assert out.is_file() and out.stat().st_size > 0
    assert f"wrote {out}" in capsys.readouterr().out


def test_build_defaults_the_output_name_and_shows_progress_on_stderr(model, capsys):
    assert cli.main(["build", str(model), "--max-batch", "4"]) == 0
    assert model.with_suffix(".plan").is_file()
    assert "build" in capsys.readouterr().err  # the tqdm line


def test_run_matches_numpy(plan, tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert cli.main(["run", str(plan), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out)]) == 0
    with np.load(out) as saved:
        assert saved["y"].dtype == np.float32
        assert np.array_equal(saved["y"], relu_add(x))
    assert "y: float32 [3, 4]" in capsys.readouterr().out


def test_run_takes_a_bare_npy_for_a_single_input_and_npz_by_name(plan, tmp_path):
    x = np.full((2, 4), 0.5, np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "in.npz", x=x)
    for spec in (tmp_path / "x.npy", tmp_path / "in.npz"):
        out = tmp_path / f"{spec.stem}_out.npz"
        assert cli.main(["run", str(plan), "-i", str(spec), "-o", str(out)]) == 0
        with np.load(out) as saved:
            assert np.array_equal(saved["y"], relu_add(x))


def test_run_random_uses_the_opt_shape(plan, tmp_path):
    out = tmp_path / "r.npz"
    assert cli.main(["run", str(plan), "--random", "--seed", "3", "-o", str(out)]) == 0
    with np.load(out) as saved:
        assert saved["y"].shape == (2, 4) and (saved["y"] >= 0).all() and saved["y"].any()


def test_inspect_prints_io_layers_and_memory(plan, capsys):
    assert cli.main(["inspect", str(plan)]) == 0
    text = capsys.readouterr().out
    assert "layers (2)" in text and "Add" in text and "Relu" in text and "fp32" in text
    assert "x: float32 batchx4" in text and "1x4 / 2x4 / 8x4" in text and "memory:" in text


def test_inspect_json(plan, capsys):
    assert cli.main(["inspect", str(plan), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [row["type"] for row in summary["layers"]] == ["Add", "Relu"]
    assert summary["inputs"][0]["profiles"] == [[[1, 4], [2, 4], [8, 4]]]
    assert summary["memory"]["weight_bytes"] == BIAS.nbytes


def test_fp16_build_shows_in_inspect(model, tmp_path, capsys):
    out = tmp_path / "half.plan"
    assert cli.main(["build", str(model), "-o", str(out), "--max-batch", "2", "--precision", "fp16", "-q"]) == 0
    capsys.readouterr()
    assert cli.main(["inspect", str(out), "--json"]) == 0
    assert {row["precision"] for row in json.loads(capsys.readouterr().out)["layers"]} == {"fp16"}


# ---------------------------------------------------------------------------------- errors
def _error(capsys) -> str:
    """stderr after any progress bar (which ends with a carriage return), checked for tracebacks."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.rsplit("\r", 1)[-1]


@pytest.mark.parametrize("argv, needle", [
    (["build", "{tmp}/missing.onnx"], "missing.onnx: no such file"),
    (["build", "{model}"], "--shapes NAME:MIN,OPT,MAX"),                    # dynamic batch, no shapes
    (["build", "{model}", "--shapes", "x:1x4,2x4"], "one shape or three"),
    (["build", "{model}", "--shapes", "x:1xq"], "'1xq' is not a shape"),
    (["build", "{model}", "--shapes", "1x4"], "write NAME:MIN,OPT,MAX"),
    (["build", "{model}", "--shapes", "z:1x4"], "not inputs of the network"),
    (["build", "{model}", "--max-batch", "2", "--workspace", "lots"], "workspace"),
    (["build", "{model}", "--max-batch", "2", "-o", "{tmp}/no/dir/m.plan"], "dir does not exist"),
    (["run", "{tmp}/missing.plan", "--random"], "no such plan file"),
    (["run", "{model}", "--random"], "not a workbench plan"),
    (["run", "{plan}"], "no data for input(s) x"),
    (["run", "{plan}", "-i", "q={tmp}/x.npy"], "no input 'q'"),
    (["run", "{plan}", "-i", "{tmp}/absent.npy"], "no such file"),
    (["run", "{plan}", "-i", "{model}"], "not a .npy or .npz file"),
    (["run", "{plan}", "-i", "{tmp}/wrong.npy"], "fit no optimization profile"),
    (["inspect", "{model}"], "not a workbench plan"),
    (["conformance", "--pattern", "("], "not a valid regular expression"),
])
def test_user_errors_exit_2_with_a_message(argv, needle, model, plan, tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.ones((9, 4), np.float32))
    capsys.readouterr()
    argv = [a.format(tmp=tmp_path, model=model, plan=plan) for a in argv]
    assert cli.main(argv) == 2
    err = _error(capsys)
    assert err.startswith("error: ") and needle in err, err


@pytest.fixture
def digits_calibration(tmp_path):
    """The shipped digits CNN and a folder of two .npz calibration batches."""
    from workbench.zoo import digits

    d = digits()
    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(2):
        np.savez(folder / f"batch{i}.npz", input=d.x_calib[8 * i:8 * i + 8])
    return d, folder


def _precisions(capsys, plan) -> dict:
    capsys.readouterr()
    assert cli.main(["inspect", str(plan), "--json"]) == 0
    return {row["name"]: row["precision"] for row in json.loads(capsys.readouterr().out)["layers"]}


def test_build_calibrates_from_a_folder_and_reuses_the_cache(digits_calibration, tmp_path, capsys):
    d, folder = digits_calibration
    out, cache = tmp_path / "digits.plan", tmp_path / "digits.calib"
    argv = ["build", str(d.model), "-o", str(out), "--precision", "int8", "--device", "cpu", "--max-batch", "8", "-q",
            "--calibrator", "minmax", "--calibration-cache", str(cache)]
    assert cli.main(argv + ["--calibration", str(folder)]) == 0
    assert "layers by precision: int8" in capsys.readouterr().out and cache.is_file()
    assert {"int8"} <= set(_precisions(capsys, out).values())
    written = cache.stat().st_mtime_ns
    assert cli.main(argv + ["--layer-precision", "Conv_0=fp32"]) == 0  # the cache alone: no data needed
    assert cache.stat().st_mtime_ns == written
    precisions = _precisions(capsys, out)
    assert precisions["Conv_0"] == "fp32" and precisions["Conv_1"] == "int8"


def test_an_int8_build_without_calibration_says_so(digits_calibration, tmp_path, capsys):
    d, _ = digits_calibration
    out = tmp_path / "digits.plan"
    assert cli.main(["build", str(d.model), "-o", str(out), "--precision", "int8", "--device", "cpu",
                     "--max-batch", "8", "-q"]) == 0
    captured = capsys.readouterr()
    assert "--calibration FOLDER" in captured.err and "int8" not in captured.out.split("layers by precision:")[1]


@pytest.mark.parametrize("extra,needle", [
    (["--percentile", "99.9"], "add --calibrator percentile"),
    (["--layer-precision", "Conv_0"], "write LAYER=PRECISION"),
    (["--layer-precision", "Conv_0=int4"], "is not one of"),
    (["--layer-precision", "Conv_0=fp16", "Conv_0=fp32"], "names layer 'Conv_0' twice"),
    (["--calibration-cache", "{tmp}/absent.calib"], "does not exist yet"),
    (["--calibration", "{tmp}/absent"], "calibration folder"),
])
def test_quantization_options_fail_clearly(extra, needle, digits_calibration, tmp_path, capsys):
    d, _ = digits_calibration
    argv = ["build", str(d.model), "-o", str(tmp_path / "d.plan"), "--precision", "int8", "--device", "cpu",
            "--max-batch", "8", "-q"] + [a.format(tmp=tmp_path) for a in extra]
    assert cli.main(argv) == 2
    err = _error(capsys)
    assert err.startswith("error: ") and needle in err, err
    assert not (tmp_path / "d.plan").exists()


def test_argparse_errors_exit_2(capsys):
    assert cli.main(["build"]) == 2
    assert cli.main(["build", "m.onnx", "--precision", "fp64"]) == 2
    assert cli.main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys):
    assert cli.main(["--version"]) == 0
    assert cli.main(["build", "--help"]) == 0
    out = capsys.readouterr().out
    assert "workbench" in out and "--shapes" in out


def test_the_installed_entry_point_prints_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "build", str(tmp_path / "nope.onnx")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "nope.onnx" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------- extension
def test_commands_register_from_a_table(monkeypatch, capsys):
    seen = {}

    def add_arguments(p):
        p.add_argument("--name", default="world")

    def run(args):
        """Say hello."""
        seen["name"] = args.name
        if args.name == "bad":
            raise WorkbenchError("bad name; pick another")
        return 0

    monkeypatch.setitem(cli.COMMANDS, "hello", (add_arguments, run))
    assert cli.main(["hello", "--name", "you"]) == 0 and seen["name"] == "you"
    assert cli.main(["hello", "--name", "bad"]) == 2
    assert _error(capsys).strip() == "error: bad name; pick another"
    cli.main(["--help"])
    assert "Say hello." in capsys.readouterr().out


def test_parse_profile():
    assert cli.parse_profile(["x:1x3,8x3,32x3", "mask:4"]) == {"x": ((1, 3), (8, 3), (32, 3)), "mask": ((4,),) * 3}
    assert cli.parse_profile(["a:b:2x2"]) == {"a:b": ((2, 2),) * 3}  # names may hold colons
    assert cli.parse_profile(["s:"]) == {"s": ((),) * 3}             # a scalar input
    with pytest.raises(WorkbenchError, match="twice"):
        cli.parse_profile(["x:1", "x:2"])


def test_conformance_command(monkeypatch, capsys):
    from workbench import conformance
    from workbench.backends.cpu import registry

    from .conformance.cases import relu_case

    monkeypatch.setattr(conformance, "load_suite", lambda: [relu_case("test_relu_a"), relu_case("test_relu_b")])
    assert cli.main(["conformance", "--pattern", "_a$", "-q"]) == 0
    text = capsys.readouterr().out
    assert "Relu" in text and "1 cases: 1 passed" in text
    registry.load_all()
    monkeypatch.setitem(registry.KERNELS, ("", "Relu"), lambda x: x + 1)  # a broken kernel: exit 1
    assert cli.main(["conformance", "-q"]) == 1
    assert "failed:\n  test_relu_a: output 'y'" in capsys.readouterr().out
    assert cli.main(["conformance", "--json", "-q"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["failed"] == 2 and [c["name"] for c in report["cases"]] == ["test_relu_a", "test_relu_b"]
