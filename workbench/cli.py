"""The command line: `workbench build | run | inspect | conformance`, and commands other modules add.

    $ workbench build model.onnx -o model.plan --precision fp16 --shapes images:1x3x224x224,8x3x224x224,32x3x224x224
    $ workbench build model.onnx --precision int8 --max-batch 32 --calibration calib/ --calibration-cache model.calib
    $ workbench run model.plan --input images=x.npy -o out.npz
    $ workbench inspect model.plan --json
    $ workbench conformance --pattern "test_relu|test_conv"

Subcommands come from a table {name: (add_arguments, run)}: add_arguments(parser) declares the
options, run(args) does the work and returns the exit code (None means 0); the first line of run's
docstring is the command's help. The core commands are in COMMANDS below; a module in the
`workbench.commands` package that defines its own COMMANDS dict adds its commands without editing
this file (keep such modules' top-level imports light: every `workbench` call imports them).

Exit codes: 0 success, 1 a check found problems (conformance failures), 2 a user error (printed as
"error: <message>", never a traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .errors import WorkbenchError
from .fileio import atomic_write

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_LISTED = 10  # layers a build names as not quantized; inspect has the rest


class UsageError(WorkbenchError):
    """A command-line argument or input file is malformed or missing."""


# ---------------------------------------------------------------------------------- build
def add_build_arguments(p: argparse.ArgumentParser) -> None:
    from .builder.config import DEVICES, PRECISIONS
    from .quant import options as quant_options

    p.add_argument("model", help="the ONNX model to build")
    p.add_argument("-o", "--output", help="plan file to write (default: the model's path with .plan)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="lowest precision layers may use")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto picks cuda when a GPU is usable")
    p.add_argument("--workspace", default="1GiB", help="workspace limit for tactics, e.g. 512MiB, 2GiB")
    p.add_argument("--shapes", nargs="+", action="extend", default=[], metavar="NAME:MIN[,OPT,MAX]",
                   help="input shapes of the optimization profile, dims joined by x, e.g. "
                        "images:1x3x224x224,8x3x224x224,32x3x224x224 (one shape: a static input); "
                        "give one per dynamic input, after the model path")
    p.add_argument("--max-batch", type=int, help="make dim 0 of every input dynamic from 1 to N")
    p.add_argument("--timing-cache", metavar="FILE", help="reuse and update tactic timings in FILE")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimization level 0..5 (default 3)")
    quant_options.add_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_command(args) -> int:
    """Compile an ONNX model into a plan file."""
    import workbench as wb

    from .builder.config import BuilderConfig
    from .errors import ConfigError
    from .quant import options as quant_options

    profiles = parse_profile(args.shapes)
    quantization = quant_options.from_args(args)
    cfg = BuilderConfig(device=args.device, precision=args.precision, workspace=args.workspace,
                        profiles=[profiles] if profiles else [], max_batch=args.max_batch,
                        timing_cache=args.timing_cache, builder_optimization_level=args.opt_level, **quantization)
    output = Path(args.output) if args.output else Path(args.model).with_suffix(".plan")
    if not output.absolute().parent.is_dir():  # say so now, not after a long build
        raise UsageError(f"cannot write {output}: folder {output.absolute().parent} does not exist")
    net = wb.load_onnx(args.model)
    with _BuildProgress(enabled=not args.quiet) as progress:
        try:
            engine = wb.build(net, cfg, progress=progress)
        except ConfigError as e:
            if "profiles=" not in str(e):
                raise
            raise ConfigError(f"{e}. On the command line: --shapes NAME:MIN,OPT,MAX (e.g. "
                              f"x:1x3x224x224,8x3x224x224,32x3x224x224) or --max-batch N") from None
    engine.save(output)
    print(f"wrote {output}: {len(engine.layers)} layers, {cfg.precision} on {engine.backend}, activations "
          f"{_mib(engine.memory.arena_bytes)}, weights {_mib(engine.memory.weight_bytes)}, built in "
          f"{engine.report.get('build_seconds', 0):.2f} s")
    info = engine.report.get("quantization") or {}
    if info:
        _report_quantization(info, engine.precisions,
                             quant_options.uncalibrated([cfg.precision], quantization) if info.get("note") else None)
    return EXIT_OK


def _report_quantization(info: dict, precisions: dict, warning: str | None) -> None:
    """After a build that asked for int8/fp8: layers by precision, and why layers stayed in floating point
    (`warning`: no calibration data, the one reason for all of them)."""
    from collections import Counter

    print("layers by precision: " + ", ".join(f"{p} {n}" for p, n in Counter(precisions.values()).most_common()))
    if warning:
        print(warning, file=sys.stderr)
        return
    skipped = sorted((info.get("not_quantized") or {}).items())
    for name, why in skipped[:MAX_LISTED]:
        print(f"  {name} not quantized: {why}", file=sys.stderr)
    if len(skipped) > MAX_LISTED:
        print(f"  ... and {len(skipped) - MAX_LISTED} more (workbench inspect lists every layer's precision)",
              file=sys.stderr)


class _BuildProgress:
    """A tqdm bar on stderr driven by build's progress(stage, fraction) callback."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=100, file=sys.stderr, desc="build", leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")

    def __call__(self, stage: str, fraction: float) -> None:
        if self.bar is not None:
            self.bar.set_description(f"build: {stage}", refresh=False)
            self.bar.update(max(0, round(fraction * 100) - self.bar.n))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def parse_profile(specs: list) -> dict:
    """{input: (min, opt, max)} from ["NAME:MIN,OPT,MAX" or "NAME:SHAPE", ...]; dims are joined by 'x'.

    >>> parse_profile(["x:1x3,8x3,32x3"])  # {'x': ((1, 3), (8, 3), (32, 3))}
    """
    profile = {}
    for spec in specs:
        name, sep, shapes = spec.rpartition(":")
        if not sep or not name:
            raise UsageError(f"--shapes {spec!r}: write NAME:MIN,OPT,MAX (or NAME:SHAPE), "
                             f"e.g. images:1x3x224x224,8x3x224x224,32x3x224x224")
        triple = [_parse_shape(s, spec) for s in shapes.split(",")]
        if len(triple) not in (1, 3):
            raise UsageError(f"--shapes {spec!r}: give one shape or three (min,opt,max), not {len(triple)}")
        if name in profile:
            raise UsageError(f"--shapes names input {name!r} twice")
        profile[name] = tuple(triple * 3 if len(triple) == 1 else triple)
    return profile


def _parse_shape(text: str, spec: str) -> tuple:
    text = text.strip()
    try:
        return tuple(int(d) for d in text.lower().split("x")) if text else ()
    except ValueError:
        raise UsageError(f"--shapes {spec!r}: {text!r} is not a shape; write dims joined by x, "
                         f"e.g. 8x3x224x224") from None


# ---------------------------------------------------------------------------------- run
def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", help="the plan file to run")
    p.add_argument("-i", "--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input from a .npy file (repeat per input); FILE.npz gives inputs by array name; "
                        "a bare FILE.npy feeds a single-input engine")
    p.add_argument("--random", action="store_true",
                   help="feed fresh random data, at the profile's opt shape, to inputs not given")
    p.add_argument("--seed", type=int, default=None, help="seed for --random (default: fresh)")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save the outputs, by name, to an .npz file")


def run_command(args) -> int:
    """Run a plan file on inputs from .npy/.npz files (or random data)."""
    import workbench as wb

    engine = wb.load_plan(args.plan)
    feeds = read_inputs(args.input, engine)
    if args.random:
        feeds = {**random_inputs(engine, np.random.default_rng(args.seed), skip=feeds), **feeds}
    missing = [s for s in engine.inputs if s.name not in feeds]
    if missing:
        raise UsageError("no data for input(s) " + ", ".join(f"{s.name} ({s.dtype} {_dims(s.shape)})"
                                                             for s in missing)
                         + "; pass --input NAME=FILE.npy for each, or --random")
    t0 = time.perf_counter()
    outputs = engine.create_execution_context().execute(feeds)
    ms = (time.perf_counter() - t0) * 1e3
    for name, value in outputs.items():
        print(f"{name}: {value.dtype} {list(value.shape)} {_stats(value)}")
    print(f"ran in {ms:.2f} ms")
    if args.output:
        path = Path(args.output)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")  # what np.savez would write; say it plainly
        buffer = io.BytesIO()
        np.savez(buffer, **outputs)
        atomic_write(path, buffer.getvalue(), "outputs")  # an interrupted run leaves no half .npz
        print(f"wrote {path}")
    return EXIT_OK


def read_inputs(specs: list, engine) -> dict:
    """{input name: array} from --input specs: NAME=FILE.npy, FILE.npz, or FILE.npy for a single input."""
    names = [s.name for s in engine.inputs]
    feeds: dict = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if sep and name not in names and not Path(spec).exists():
            raise UsageError(f"--input {spec!r}: the engine has no input {name!r}; its inputs are {names}")
        named = bool(sep) and name in names
        value = read_array_file(file if named else spec)
        if named:
            feeds[name] = _one_array(value, name, file)
        elif isinstance(value, dict):
            feeds.update(value)
        elif len(names) == 1:
            feeds[names[0]] = value
        else:
            raise UsageError(f"--input {spec!r}: the engine has {len(names)} inputs {names}; "
                             f"write --input NAME=FILE.npy for each")
    return feeds


def _one_array(value, name: str, file: str) -> np.ndarray:
    """The array for input `name` from a .npy value or an .npz archive (its `name` entry or its only one)."""
    if not isinstance(value, dict):
        return value
    if name in value or len(value) == 1:
        return value.get(name, next(iter(value.values())))
    raise UsageError(f"{file}: has arrays {sorted(value)} but none named {name!r}")


def read_array_file(file: str):
    """An array from a .npy file or {name: array} from an .npz; never unpickles (files may come from anywhere)."""
    try:
        with open(file, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise UsageError(f"{file}: no such file") from None
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise UsageError(f"{file}: not a .npy or .npz file; save inputs with numpy.save or numpy.savez")
    try:
        value = np.load(file, allow_pickle=False)
        if isinstance(value, np.lib.npyio.NpzFile):
            with value:
                return {k: value[k] for k in value.files}
        return value
    except (ValueError, OSError) as e:
        why = ("it holds Python objects; only numeric arrays are read: save plain arrays with numpy.save"
               if "pickle" in str(e) else str(e))
        raise UsageError(f"{file}: cannot be read as arrays ({why})") from None


def random_inputs(engine, rng: np.random.Generator, skip=()) -> dict:
    """Random data for each input not in `skip`, at the first profile's opt shape.

    Floats are standard normal, integers uniform in [0, 4) (small enough to be valid indices of most
    gathers), booleans fair coin flips.
    """
    from .dtypes import is_float, np_dtype

    feeds = {}
    for spec in engine.inputs:
        if spec.name in skip:
            continue
        shape = engine.profiles[0][spec.name][1]
        dtype = np_dtype(spec.dtype)
        if is_float(spec.dtype):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[spec.name] = rng.random(shape) < 0.5
        else:
            feeds[spec.name] = rng.integers(0, 4, size=shape).astype(dtype)
    return feeds


def _stats(value: np.ndarray) -> str:
    if value.size == 0 or (value.dtype.kind not in "fiub" and value.dtype.name != "bfloat16"):
        return ""
    v = value.astype(np.float64)
    return f"min {np.nanmin(v):.6g} max {np.nanmax(v):.6g} mean {np.nanmean(v):.6g}"


# ---------------------------------------------------------------------------------- inspect
def add_inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", help="the plan file to describe")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--profile", action="store_true", help="run the engine to time every layer")
    p.add_argument("--iterations", type=int, default=10, help="runs per layer timing with --profile")


def inspect_command(args) -> int:
    """Describe a plan file: inputs/outputs, layers (type, precision, tactic, fusions), memory."""
    import workbench as wb

    summary = engine_summary(wb.load_plan(args.plan), args.profile, args.iterations)
    print(json.dumps(summary, indent=1, default=_json_default) if args.json else format_summary(summary))
    return EXIT_OK


def engine_summary(engine, profile: bool = False, iterations: int = 10) -> dict:
    """A JSON-ready description of an engine: IO with profiles, layer rows, memory plan, build facts."""
    mem = engine.memory
    return {
        "name": engine.network.name, "backend": engine.backend, "device": engine.device,
        "precision": engine.config.get("precision"),
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": s.shape,
                    "profiles": [list(p[s.name]) for p in engine.profiles if s.name in p]} for s in engine.inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": s.shape} for s in engine.outputs],
        "layers": layer_rows(engine, profile, iterations),
        "memory": {"activation_bytes": mem.arena_bytes, "without_reuse_bytes": mem.naive_bytes,
                   "weight_bytes": mem.weight_bytes, "io_bytes": mem.io_bytes, "unsized": list(mem.unsized)},
        "build": {"seconds": engine.report.get("build_seconds"), "passes": engine.report.get("passes", {})},
    }


def layer_rows(engine, profile: bool = False, iterations: int = 10) -> list:
    """Per-layer rows of workbench.tools.inspect (measured times too when `profile`)."""
    from .tools.inspect import inspect_engine

    frame = inspect_engine(engine, profile=profile, iterations=iterations).to_dataframe()
    return frame.to_dict(orient="records")


def format_summary(s: dict) -> str:
    """The text form of engine_summary()."""
    lines = [f"engine {s['name']!r} on {s['backend']} ({s['device'].get('name', '?')}), "
             f"built at {s['precision']} in {s['build']['seconds']} s", "", "inputs:"]
    for t in s["inputs"]:
        ranges = "; ".join(" / ".join(_dims(x) for x in p) for p in t["profiles"])
        lines.append(f"  {t['name']}: {t['dtype']} {_dims(t['shape'])}  profile min/opt/max {ranges}")
    lines.append("outputs:")
    lines += [f"  {t['name']}: {t['dtype']} {_dims(t['shape'])}" for t in s["outputs"]]
    lines += ["", f"layers ({len(s['layers'])}):", *_table(s["layers"], _COLUMNS), "", "memory:"]
    m = s["memory"]
    lines += [f"  activations {_mib(m['activation_bytes'])} (without reuse {_mib(m['without_reuse_bytes'])}), "
              f"weights {_mib(m['weight_bytes'])}, inputs+outputs {_mib(m['io_bytes'])}"]
    if m["unsized"]:
        lines.append(f"  sized at run time: {', '.join(m['unsized'])}")
    return "\n".join(lines)


def _table(rows: list, columns=None) -> list:
    """Rows of dicts as aligned text columns (shapes as 1x3x224, lists joined); all keys unless `columns`."""
    if not rows:
        return ["  (none)"]
    columns = [c for c in (columns or rows[0]) if any(row.get(c) is not None for row in rows)]
    cells = [[_cell(c, row.get(c), row) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    fmt = lambda values: "  " + "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return [fmt(columns), *(fmt(r) for r in cells)]


_COLUMNS = ("name", "type", "precision", "tactic", "fused", "output_shapes", "flops", "weight_bytes", "time_ms",
            "share")


def _cell(column: str, value, row: dict) -> str:
    if column == "fused" and value == [row.get("name")]:
        return "-"  # a layer that stands only for itself
    if column.endswith("_shapes") and isinstance(value, (list, tuple)):
        return ", ".join(_dims(shape) for shape in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "+".join(str(v) for v in value)
    return "" if value is None else str(value)


def _dims(shape) -> str:
    if shape is None:
        return "?"
    return "x".join(str(d) for d in shape) if len(shape) else "scalar"


# ---------------------------------------------------------------------------------- conformance
def add_conformance_arguments(p: argparse.ArgumentParser) -> None:
    from .conformance import CASE_TIMEOUT

    p.add_argument("--pattern", help="run only tests whose name matches this regex, e.g. 'test_relu|test_conv'")
    p.add_argument("--json", action="store_true", help="print the full report (summary, per op, per case) as JSON")
    p.add_argument("--timeout", type=float, default=CASE_TIMEOUT, help="seconds per case (default %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def conformance_command(args) -> int:
    """Run the ONNX backend node tests through the whole pipeline; exit 1 if any case failed."""
    from .conformance import run_conformance

    report = run_conformance(args.pattern, progress=not args.quiet, timeout=args.timeout)
    if args.json:
        print(report.to_json())
    else:
        rows = [{"op": op, **counts} for op, counts in report.by_op().items()]
        failures = [f"  {c['name']}: {_shorten(c['reason'])}" for c in report.failures()]
        print("\n".join([*_table(rows), *(["", "failed:", *failures] if failures else []), "", str(report)]))
    return EXIT_PROBLEMS if report.failures() else EXIT_OK


def _shorten(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------------------- the driver
COMMANDS: dict = {
    "build": (add_build_arguments, build_command),
    "run": (add_run_arguments, run_command),
    "inspect": (add_inspect_arguments, inspect_command),
    "conformance": (add_conformance_arguments, conformance_command),
}


def commands() -> dict:
    """The core COMMANDS plus those of every module in the `workbench.commands` package."""
    table = dict(COMMANDS)
    try:
        package = importlib.import_module(f"{__package__}.commands")
    except ImportError:
        return table
    for mod in pkgutil.iter_modules(package.__path__):
        table.update(getattr(importlib.import_module(f"{package.__name__}.{mod.name}"), "COMMANDS", {}))
    return table


def make_parser(table: dict | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Compile ONNX models into inference engines.")
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_arguments, run) in (table or commands()).items():
        summary = (run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else None
        p = sub.add_parser(name, help=summary, description=summary)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv=None) -> int:
    """Entry point of the `workbench` command; returns the exit code.  >>> main(["inspect", "m.plan"])"""
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed its usage message
        return int(e.code or 0)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args) or EXIT_OK)
    except WorkbenchError as e:
        return _fail(str(e), EXIT_USAGE)
    except BrokenPipeError:  # `workbench inspect --json | head`: the reader left; not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:  # unreadable or unwritable files: the user's to fix, not a bug to trace
        return _fail(f"{e.filename}: {e.strerror or e}" if e.filename else str(e), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _mib(n) -> str:
    return f"{(n or 0) / 2**20:.2f} MiB"


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
