import argparse
import json

import numpy as np
import pytest

from workbench.tools.cli_commands import COMMANDS

from .models import add_relu_model, engine_of

pytestmark = pytest.mark.filterwarnings("ignore::workbench.tools.bench.BenchWarning")


def run(*argv) -> int:
    parser = argparse.ArgumentParser(prog="workbench")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name))
    args = parser.parse_args([str(a) for a in argv])
    return COMMANDS[args.command][1](args)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "m.onnx"
    path.write_bytes(add_relu_model().SerializeToString())
    return path


def test_commands_are_registered():
    assert set(COMMANDS) == {"bench", "compare", "sweep"}
    assert all(callable(a) and callable(r) for a, r in COMMANDS.values())


def test_bench_prints_a_trtexec_summary_and_json(onnx_path, capsys):
    fast = ("--duration", 0.05, "--warmup-ms", 0, "--device", "cpu", "--batch", 4)
    assert run("bench", onnx_path, *fast, "--baseline", "onnxruntime") == 0
    out = capsys.readouterr().out
    assert "Throughput" in out and "workbench-cpu" in out and "onnxruntime-cpu" in out
    assert run("bench", onnx_path, *fast, "--json") == 0
    assert json.loads(capsys.readouterr().out)["batch"] == 4


def test_compare_exit_code_follows_the_verdict(onnx_path, tmp_path, capsys):
    assert run("compare", onnx_path, "--device", "cpu", "--batch", 2, "--per-layer") == 0
    assert "PASSED" in capsys.readouterr().out
    plan = tmp_path / "bad.plan"
    engine = engine_of(add_relu_model())
    engine.network.weights["w1"] = engine.network.weights["w1"] + 1
    engine.save(plan)
    assert run("compare", plan, "--onnx", onnx_path, "--per-layer", "--json") == 1
    assert json.loads(capsys.readouterr().out)["first_bad_layer"] == "add1"
    assert run("compare", plan) == 2
    assert "--onnx" in capsys.readouterr().err


def test_compare_on_a_dataset_file(onnx_path, tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((6, 64)).astype(np.float32), y=np.arange(6))
    assert run("compare", onnx_path, "--device", "cpu", "--batch", 4, "--data", data) == 0
    assert "accuracy" in capsys.readouterr().out


def test_sweep_table(onnx_path, capsys):
    code = run("sweep", onnx_path, "--batch", 1, 2, "--precision", "fp32", "fp64", "--device", "cpu",
               "--duration", 0.02, "--executor", "threads")
    out = capsys.readouterr().out
    assert code == 1 and "ConfigError" in out and "workbench-cpu" in out  # fp64 rows failed, others ran


def test_errors_are_one_line(capsys, tmp_path):
    assert run("bench", tmp_path / "missing.onnx") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err


def test_commands_that_build_take_calibration(tmp_path, capsys):
    """bench, compare and sweep build an .onnx with the same quantization options as `workbench build`."""
    from workbench.tools import cli_commands
    from workbench.zoo import digits

    d = digits()
    folder = tmp_path / "calib"
    folder.mkdir()
    np.savez(folder / "batch.npz", input=d.x_calib[:16])
    parser = argparse.ArgumentParser()
    COMMANDS["bench"][0](parser)
    args = parser.parse_args([str(d.model), "--device", "cpu", "--batch", "4", "--precision", "int8",
                              "--calibration", str(folder), "--calibrator", "percentile", "--percentile", "99.9",
                              "--layer-precision", "Gemm_0=fp32"])
    precisions = cli_commands._engine(args).precisions
    assert precisions["Conv_1"] == "int8" and precisions["Gemm_0"] == "fp32"
    assert "without --calibration" not in capsys.readouterr().err
    bare = parser.parse_args([str(d.model), "--device", "cpu", "--batch", "4", "--precision", "int8"])
    assert "int8" not in cli_commands._engine(bare).precisions.values()
    assert "int8 without --calibration" in capsys.readouterr().err
    code = run("sweep", d.model, "--batch", 4, "--precision", "fp32", "int8", "--device", "cpu", "--duration", 0.02,
               "--baseline", "none", "--calibration", folder, "--json")
    assert code == 0
    rows = {row["precision"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["int8"]["status"] == "ok" and rows["int8"]["memory_bytes"] < rows["fp32"]["memory_bytes"] / 2
