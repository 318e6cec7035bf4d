"""Side by side on one GPU, in one process: workbench engines against PyTorch eager (fp32, fp16) and
torch.compile (reduce-overhead, fp16), on the same models, the same weights and the same inputs.

    python benchmarks/bench_gpu.py --cases resnet50:1,256 bert:1,64 mobilenetv2:1,64 --out results.json
    python benchmarks/bench_gpu.py --cases resnet50:1 --device cpu --iters 3     # a smoke test without a GPU

Each model is defined in plain PyTorch (tests/models/torch_models.py, picked by name in
benchmarks/torch_models.py), exported to ONNX once (opset 17, dynamic batch), and built
by workbench at the requested precision with an optimization profile of (1, batch, batch). Latency is
timed per request (CUDA events around one call, synchronised), after a warm-up, over input sets
drawn fresh and rotated; reported as the median (p50) and 99th percentile; throughput = batch / p50.
Memory: PyTorch's peak allocated bytes during a forward plus its parameters; workbench's weights +
activations + workspace from the runner's report. Output parity is the relative L2 error of each
mode's output against PyTorch fp32 on the same input. Prints a markdown table last.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch_models as tm  # noqa: E402

from workbench.tools import energy  # noqa: E402

ENERGY_S = 1.0  # seconds of back-to-back calls per mode for the energy reading
MODES = ("torch-fp32", "torch-fp16", "torch-compile-fp16", "workbench")
INPUT_SETS = 3


def log(*a):
    print(*a, flush=True)


# ------------------------------------------------------------------------------------------ timing
class Timer:
    """Per-call latency in ms: CUDA events on the GPU, perf_counter on the CPU."""

    def __init__(self, device: str):
        self.cuda = device == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def one(self, fn, arg) -> float:
        if not self.cuda:
            t0 = time.perf_counter()
            fn(arg)
            return (time.perf_counter() - t0) * 1e3
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(arg)
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop)

    def run(self, fn, args: list, warmup: int, iters: int) -> dict:
        for i in range(warmup):
            fn(args[i % len(args)])
        self.sync()
        times = np.array([self.one(fn, args[i % len(args)]) for i in range(iters)])
        return {"p50_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99)),
                "mean_ms": float(times.mean()), "iters": iters, **self.energy(fn, args)}

    def energy(self, fn, args: list, seconds: float = ENERGY_S) -> dict:
        """Joules per call from the board's energy counter (NVML, workbench.tools.energy) over a
        back-to-back run of at least `seconds`: short loops are below the counter's resolution."""
        meter = energy.meter_for("cuda" if self.cuda else "cpu")
        if meter is None:
            return {"joules_per_call": None}
        calls, t0 = 0, time.perf_counter()
        meter.start()
        while time.perf_counter() - t0 < seconds:
            fn(args[calls % len(args)])
            calls += 1
        self.sync()
        used = meter.stop()
        return {"joules_per_call": used["joules"] / calls if used["joules"] else None, "energy_source": used["source"]}


def rel_l2(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def cosine(got, want) -> float:
    g, w = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    return float(g @ w / max(np.linalg.norm(g) * np.linalg.norm(w), 1e-300))


def to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


# ------------------------------------------------------------------------------------------ PyTorch
def torch_modes(model, name, batch, feeds_list, args, timer, want_modes) -> tuple:
    """{mode: row} for the PyTorch modes, and the fp32 outputs used as the parity reference."""
    rows, ref = {}, None
    dev = args.device
    with torch.inference_mode():
        ref = [to_numpy(model(*f.values())) for f in feeds_list]
        for mode in want_modes:
            if not mode.startswith("torch"):
                continue
            half = "fp16" in mode
            m = copy.deepcopy(model).half() if half else model
            feeds = [{k: (v.half() if half and v.is_floating_point() else v) for k, v in f.items()} for f in feeds_list]
            t_compile = None
            if "compile" in mode:
                t0 = time.perf_counter()
                m = torch.compile(m, mode="reduce-overhead")
                for f in feeds:
                    m(*f.values())
                timer.sync()
                t_compile = time.perf_counter() - t0
            params = sum(p.numel() * p.element_size() for p in m.parameters()) + \
                sum(b.numel() * b.element_size() for b in m.buffers())
            peak = None
            if dev == "cuda":
                timer.sync()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                m(*feeds[0].values())
                timer.sync()
                peak = params + torch.cuda.max_memory_allocated() - base
            lat = timer.run(lambda f: m(*f.values()), feeds, args.warmup, iters_for(batch, args))
            out = to_numpy(m(*feeds[0].values()))
            rows[mode] = dict(lat, mode=mode, model=name, batch=batch, throughput=batch * 1e3 / lat["p50_ms"],
                              memory_bytes=peak, build_s=t_compile, rel_err=rel_l2(out, ref[0]))
            log(f"  {mode:20s} p50 {lat['p50_ms']:.3f} ms  {rows[mode]['throughput']:.0f}/s")
            del m
            if dev == "cuda":
                torch.cuda.empty_cache()
    return rows, ref


def iters_for(batch: int, args) -> int:
    return max(10, args.iters // (4 if batch >= 64 else 1))


# ------------------------------------------------------------------------------------------ workbench
def profile_of(net, feeds: dict) -> list:
    return [{n: ((1, *a.shape[1:]), tuple(a.shape), tuple(a.shape)) for n, a in feeds.items()}]


def save(args, card: str, rows: list, extras: dict) -> None:
    """All numbers so far (written after every engine, so a run cut short keeps what it measured)."""
    if args.out:
        Path(args.out).write_text(json.dumps({"card": card, "rows": rows, "extras": extras}, indent=1, default=str))


def calibrator(name: str, args):
    """MinMax calibration on `--calib-batches` fresh random batches of 4 (documented with the results)."""
    import workbench as wb

    gen = torch.Generator().manual_seed(1234)
    data = [{k: to_numpy(v) if v.is_floating_point() else v.numpy() for k, v in tm.inputs(name, 4, args.seq, "cpu", gen).items()}
            for _ in range(args.calib_batches)]
    return wb.quant.MinMaxCalibrator(data, progress=False, device=args.device)


def workbench_mode(onnx_path, name, batch, feeds_list, ref, args, timer, precision, warm=False) -> tuple:
    import workbench as wb

    net = wb.load_onnx(onnx_path)
    np_feeds = [{k: to_numpy(v) if v.is_floating_point() else v.cpu().numpy() for k, v in f.items()}
                for f in feeds_list]
    cfg = dict(device=args.device, precision=precision, profiles=profile_of(net, np_feeds[0]),
               builder_optimization_level=args.level, timing_cache=args.timing_cache)
    if precision in ("int8", "fp8"):
        cfg["calibrator"] = calibrator(name, args)
    t0 = time.perf_counter()
    engine = wb.build(net, wb.BuilderConfig(**cfg))
    build_s = time.perf_counter() - t0
    log(f"  workbench build {build_s:.1f} s; tactics {histogram(engine.tactics.values())}")
    warm_s = None
    if warm and batch >= 64:  # the cache matters for the big builds
        t0 = time.perf_counter()
        wb.build(net, wb.BuilderConfig(**cfg))
        warm_s = time.perf_counter() - t0
        log(f"  workbench rebuild with a warm timing cache {warm_s:.1f} s")
    ctx = engine.create_execution_context()
    if args.device == "cuda":
        import cupy as cp

        feeds = [{k: cp.from_dlpack(v.contiguous()) for k, v in f.items()} for f in feeds_list]
    else:
        feeds = np_feeds
    lat = timer.run(lambda f: ctx.execute(f), feeds, args.warmup, iters_for(batch, args))
    out = to_numpy(list(ctx.execute(feeds[0]).values())[0])
    row = dict(lat, mode=f"workbench-{precision}", model=name, batch=batch, throughput=batch * 1e3 / lat["p50_ms"],
               build_s=build_s, warm_build_s=warm_s, rel_err=rel_l2(out, ref[0]), cosine=cosine(out, ref[0]),
               memory_bytes=None)
    extra = {"notes": engine.report.get("notes", []), "tactics": histogram(engine.tactics.values()),
             "timed_by_type": timed_by_type(engine), "build_stages": engine.report.get("stages"),
             "excluded_sample": dict(list(engine.report.get("excluded", {}).items())[:8]),
             "candidate_ms": engine.report.get("timings", {})}
    runner = getattr(ctx, "_runner", None)
    if args.device == "cuda" and runner is not None:
        mem = runner.memory()
        row["memory_bytes"] = mem["weights_bytes"] + mem["activations_bytes"] + mem["workspace_bytes"]
        extra.update(memory=mem, runtime_notes=list(runner.notes))
        if args.arena_compare:  # the same engine's graphs in CuPy's pool instead of the planned arena
            os.environ["WORKBENCH_CUDA_ARENA"] = "0"
            try:
                pooled = engine.create_execution_context()
                for f in feeds[:2] + feeds[:1]:
                    pooled.execute(f)
                extra["memory_pool_graphs"] = pooled._runner.memory()
                del pooled
            finally:
                os.environ.pop("WORKBENCH_CUDA_ARENA", None)
        if args.profile:
            prof = runner.profile(feeds[0], runs=5)
            extra["profile_top"] = sorted(prof, key=lambda r: -r["ms"])[:12]
            extra["profile"] = prof  # every layer in execution order, for the notes
            extra["profile_by_type"] = by_type(prof)
            extra["profile_sum_ms"] = sum(r["ms"] for r in prof)
    log(f"  workbench-{precision:9s} p50 {lat['p50_ms']:.3f} ms  {row['throughput']:.0f}/s  "
        f"rel err {row['rel_err']:.2e}  cosine {row['cosine']:.5f}")
    del ctx, engine
    return row, extra


def timed_by_type(engine) -> dict:
    """Milliseconds per op type of the chosen tactics, as the builder timed them (graph replays, no gaps)."""
    out: dict = {}
    for layer in engine.network.layers:
        times = engine.report.get("timings", {}).get(layer.name)
        if times:
            out[layer.op] = round(out.get(layer.op, 0.0) + min(times.values()), 4)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def histogram(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def by_type(prof: list) -> dict:
    out: dict = {}
    for r in prof:
        out[r["type"]] = round(out.get(r["type"], 0.0) + r["ms"], 4)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# ------------------------------------------------------------------------------------------ report
def table(rows: list, card: str) -> str:
    head = ("| model | batch | mode | p50 ms | p99 ms | throughput /s | inferences/J | memory MiB | build s "
            "| warm build s | rel. err vs torch fp32 | cosine |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"Card: {card}", "", head]
    for r in rows:
        mem = f"{r['memory_bytes'] / 2**20:.0f}" if r.get("memory_bytes") else "-"
        build = f"{r['build_s']:.1f}" if r.get("build_s") is not None else "-"
        warm = f"{r['warm_build_s']:.1f}" if r.get("warm_build_s") is not None else "-"
        per_joule = f"{r['batch'] / r['joules_per_call']:.0f}" if r.get("joules_per_call") else "-"
        cos = f"{r['cosine']:.5f}" if r.get("cosine") is not None else "-"
        lines.append(f"| {r['model']} | {r['batch']} | {r['mode']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                     f"{r['throughput']:.0f} | {per_joule} | {mem} | {build} | {warm} | {r['rel_err']:.1e} | {cos} |")
    return "\n".join(lines)


def card_name(device: str) -> str:
    if device != "cuda":
        return "CPU"
    return torch.cuda.get_device_name(0)


def parse_cases(specs: list) -> list:
    out = []
    for spec in specs:
        name, _, batches = spec.partition(":")
        out.extend((name, int(b)) for b in (batches or "1").split(","))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["resnet50:1,256", "bert:1,64", "mobilenetv2:1,64"])
    p.add_argument("--modes", default="all", help=f"comma list of {MODES} or 'all'")
    p.add_argument("--precision", default="fp16", help="workbench precisions, comma-separated (fp16,int8)")
    p.add_argument("--calib-batches", type=int, default=4, help="random batches of 4 for int8 MinMax calibration")
    p.add_argument("--extra-precision-min-batch", type=int, default=1,
                   help="precisions after the first run only at batches of at least this")
    p.add_argument("--arena-compare", action="store_true", help="also report graph memory without the arena")
    p.add_argument("--level", type=int, default=3, help="builder_optimization_level")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--timing-cache", default=os.path.join(tempfile.gettempdir(), "wb-bench-timing.json"))
    p.add_argument("--warm-rebuild", action="store_true", help="rebuild each engine with the warm timing cache")
    p.add_argument("--profile", action="store_true", help="per-layer profile of each workbench engine")
    p.add_argument("--compile-max-batch", type=int, default=1 << 30, help="skip torch.compile above this batch")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds after which torch.compile (the slowest mode to prepare) is skipped")
    p.add_argument("--out", default=None, help="JSON file for all numbers")
    p.add_argument("--results-md", default=None, help="append the dated table to this markdown file")
    args = p.parse_args(argv)
    modes = MODES if args.modes == "all" else tuple(args.modes.split(","))
    timer = Timer(args.device)
    torch.backends.cudnn.benchmark = True  # PyTorch's fastest conv algorithms: the strongest fair baseline
    card = card_name(args.device)
    log(f"card: {card}; torch {torch.__version__}; modes {modes}; precision {args.precision}")
    rows, extras = [], {}
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    models: dict = {}
    for name, batch in parse_cases(args.cases):
        if name not in models:
            model = tm.make(name, args.seq)
            onnx_path = str(workdir / f"{name}.onnx")
            t0 = time.perf_counter()
            model.export(onnx_path)  # on the CPU, before the move: the legacy exporter at opset 17
            model.to(args.device)
            log(f"{name}: exported to ONNX in {time.perf_counter() - t0:.1f} s")
            models[name] = (model, onnx_path)
        model, onnx_path = models[name]
        log(f"{name} batch {batch}")
        gen = torch.Generator(device=args.device).manual_seed(int(time.time()))
        feeds_list = [tm.inputs(name, batch, args.seq, args.device, gen) for _ in range(INPUT_SETS)]
        late = args.deadline is not None and time.perf_counter() - started > args.deadline
        want = [m for m in modes if not (m.startswith("torch-compile") and (batch > args.compile_max_batch or late))]
        if late and "torch-compile-fp16" in modes:
            log("  torch.compile skipped: past the --deadline")
        try:
            trows, ref = torch_modes(model, name, batch, feeds_list, args, timer, want)
            rows.extend(trows.values())
        except Exception as e:  # noqa: BLE001 - report and go on with the other cases
            log(f"  torch failed: {type(e).__name__}: {e}")
            with torch.inference_mode():
                ref = [to_numpy(model(*f.values())) for f in feeds_list]
        precisions = args.precision.split(",") if "workbench" in modes else []
        for i, precision in enumerate(precisions):
            if i and batch < args.extra_precision_min_batch:
                continue
            try:
                row, extra = workbench_mode(onnx_path, name, batch, feeds_list, ref, args, timer, precision,
                                            warm=args.warm_rebuild and i == 0)
                rows.append(row)
                extras[f"{name}:{batch}:{precision}"] = extra
            except Exception as e:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                log(f"  workbench-{precision} failed: {type(e).__name__}: {e}")
            save(args, card, rows, extras)
        save(args, card, rows, extras)
    md = table(rows, card)
    if args.results_md:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.results_md, "a") as f:
            f.write(f"\n## {stamp}, {card}, workbench {args.precision}, level {args.level}\n\n{md}\n")
    log("\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
