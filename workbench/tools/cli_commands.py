"""`workbench bench | compare | sweep`: the command-line faces of the tools.

COMMANDS maps a subcommand to (add_arguments(parser), run(args) -> exit code); workbench/cli.py
registers them (the first line of run's docstring is the help). Each prints a readable summary, or
JSON with --json. Exit codes: 0 ok, 1 a check failed (compare out of tolerance, a sweep point
failed), 2 a user error printed as "error: ...". Top-level imports stay light: `workbench --help`
imports this module.

    $ workbench bench model.onnx --batch 8 --precision fp16 --baseline onnxruntime
    $ workbench compare model.onnx --per-layer --baseline reference
    $ workbench sweep model.onnx --batch 1 8 --precision fp32 fp16 --executor dask --workers 2
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

from ..errors import WorkbenchError
from ..quant import options as quant_options

BASELINES = ("onnxruntime", "reference", "none")


# ---------------------------------------------------------------------------------- shared pieces
def _add_model(parser, build: bool = True) -> None:
    parser.add_argument("model", help="an .onnx model (built on the fly) or a plan file")
    if build:
        parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
        parser.add_argument("--precision", default="fp32", help="lowest precision the builder may use")
        parser.add_argument("--workspace", default="1GiB", help="builder workspace limit, e.g. 512MiB")
        parser.add_argument("--batch", type=int, default=None, help="batch size (the engine's max batch)")
        quant_options.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _engine(args):
    """The engine named on the command line: a plan is loaded, an ONNX model is built with the options."""
    from ..builder.build import build
    from ..builder.config import BuilderConfig
    from ..parsers.onnx import load_onnx
    from ..runtime.plan import load_plan
    from .runners import is_plan_file

    if is_plan_file(args.model):
        return load_plan(args.model)
    options = quant_options.from_args(args)
    _warn(quant_options.uncalibrated([args.precision], options))
    cfg = BuilderConfig(device=args.device, precision=args.precision, workspace=args.workspace,
                        max_batch=args.batch, **options)
    return build(load_onnx(args.model), cfg)


def _baseline(kind: str, model):
    from .. import baselines

    if kind == "none" or model is None:
        return None
    return baselines.Reference(model) if kind == "reference" else baselines.OnnxRuntime(model)


def _onnx_of(args):
    """The ONNX model behind the command: the model argument, or --onnx for a plan."""
    onnx_path = getattr(args, "onnx", None)
    if onnx_path:
        return onnx_path
    from .runners import is_plan_file

    return None if is_plan_file(args.model) else args.model


def _warn(message: str | None) -> None:
    if message:
        print(message, file=sys.stderr)


def _emit(args, result, text: str | None = None) -> None:
    print(result.to_json() if args.json else (text if text is not None else str(result)))


def _reports_errors(run):
    """Print a WorkbenchError as one readable line on stderr and exit with 2 instead of a traceback."""
    @functools.wraps(run)
    def wrapper(args) -> int:
        try:
            return run(args)
        except WorkbenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return wrapper


# ---------------------------------------------------------------------------------- bench
def add_bench_arguments(parser) -> None:
    _add_model(parser)
    parser.add_argument("--warmup-ms", type=float, default=200)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of timed runs (at least)")
    parser.add_argument("--iterations", type=int, default=10, help="timed runs (at least)")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--no-cuda-graph", action="store_true")
    parser.add_argument("--transfers", action="store_true", help="time host<->device copies (GPU)")
    parser.add_argument("--baseline", choices=BASELINES, default="none", help="also bench this framework")


@_reports_errors
def run_bench(args) -> int:
    """Benchmark an engine (trtexec-like): throughput, latency percentiles, memory, energy."""
    from .bench import bench

    options = dict(batch=args.batch, warmup_ms=args.warmup_ms, duration_s=args.duration,
                   iterations=args.iterations, streams=args.streams, cuda_graph=not args.no_cuda_graph,
                   transfers=args.transfers)
    results = [bench(_engine(args), **options)]
    other = _baseline(args.baseline, _onnx_of(args))
    if other is not None:
        results.append(bench(other, **options))
    if args.json:
        print("[" + ",\n".join(r.to_json() for r in results) + "]" if len(results) > 1 else results[0].to_json())
    else:
        print("\n\n".join(r.summary() for r in results))
    return 0


# ---------------------------------------------------------------------------------- compare
def add_compare_arguments(parser) -> None:
    _add_model(parser)
    parser.add_argument("--onnx", help="the original ONNX model, when MODEL is a plan")
    parser.add_argument("--baseline", choices=BASELINES[:2], default="onnxruntime")
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--per-layer", action="store_true", help="find the first layer out of tolerance")
    parser.add_argument("--data", help=".npz with x (inputs) and optionally y (labels), for a single-input model")
    parser.add_argument("--seed", type=int, default=None)


def _dataset(path: str | None, input_name: str):
    """(x, y) from an .npz, or [{input: x}] when it has no labels."""
    if not path:
        return None
    from ..cli import read_array_file  # the one reader of user array files: it never unpickles

    data = read_array_file(path)
    if not isinstance(data, dict) or "x" not in data:
        raise WorkbenchError(f"{path}: needs an .npz with an array named 'x' (and 'y' for labels); it has "
                             f"{sorted(data) if isinstance(data, dict) else 'a single array'}")
    return (data["x"], data["y"]) if "y" in data else [{input_name: data["x"]}]


@_reports_errors
def run_compare(args) -> int:
    """Compare an engine's outputs with onnxruntime or onnx.reference (Polygraphy-like)."""
    from .compare import compare

    model = _onnx_of(args)
    if model is None:
        raise WorkbenchError(f"{args.model} is a plan: give the original model with --onnx model.onnx")
    engine = _engine(args)
    dataset = _dataset(args.data, engine.inputs[0].name)
    result = compare(engine, _baseline(args.baseline, model), dataset=dataset, atol=args.atol, rtol=args.rtol,
                     per_layer=args.per_layer, batch=args.batch, seed=args.seed)
    _emit(args, result)
    return 0 if result else 1


# ---------------------------------------------------------------------------------- sweep
def add_sweep_arguments(parser) -> None:
    parser.add_argument("model", help="the .onnx model to sweep")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    parser.add_argument("--workspace", nargs="+", default=None)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--baseline", choices=BASELINES, default="onnxruntime")
    parser.add_argument("--executor", choices=("serial", "threads", "processes", "dask"), default="serial")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=0.5, help="seconds of timed runs per point")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    parser.add_argument("--json", action="store_true")
    quant_options.add_arguments(parser)


def _executor(kind: str, workers: int):
    """(executor or None, a function that shuts it down)."""
    import concurrent.futures as cf

    if kind == "serial":
        return None, lambda: None
    if kind == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise WorkbenchError("--executor dask needs dask[distributed]: pip install 'dask[distributed]'") from None
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1)
        client = Client(cluster)
        return client.get_executor(), lambda: (client.close(), cluster.close())
    pool = (cf.ThreadPoolExecutor if kind == "threads" else cf.ProcessPoolExecutor)(workers)
    return pool, pool.shutdown


@_reports_errors
def run_sweep(args) -> int:
    """Build, bench and compare a grid of batch sizes, precisions and workspaces."""
    from .sweep import sweep

    if not Path(args.model).is_file():
        raise WorkbenchError(f"{args.model}: no such file; give the path of an .onnx model")
    grid = {"batch": args.batch, "precision": args.precision}
    if args.workspace:
        grid["workspace"] = args.workspace
    baseline = False if args.baseline == "none" else _baseline(args.baseline, args.model)
    options = quant_options.from_args(args)
    _warn(quant_options.uncalibrated(args.precision, options))
    executor, close = _executor(args.executor, args.workers)
    try:
        result = sweep(args.model, grid, baseline=baseline, executor=executor,
                       config={"device": args.device, **options}, bench_options={"duration_s": args.duration})
    finally:
        close()
    frame = result.to_dataframe()
    if args.csv:
        frame.to_csv(args.csv, index=False)
    columns = [c for c in ("runner", *grid, "status", "throughput", "latency_mean_ms", "max_abs", "accuracy",
                           "memory_bytes", "pareto", "message") if c in frame]
    _emit(args, result, frame[columns].to_string(index=False))
    return 0 if (frame["status"] == "ok").all() else 1


COMMANDS = {
    "bench": (add_bench_arguments, run_bench),
    "compare": (add_compare_arguments, run_compare),
    "sweep": (add_sweep_arguments, run_sweep),
}
