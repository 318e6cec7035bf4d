"""ResNet-50 on the CPU: a workbench fp32 engine against onnxruntime, side by side in one process.

    python benchmarks/bench_cpu.py [--batch 1] [--duration 10] [--append benchmarks/RESULTS.md]

Both run the same zoo model on the same random inputs; onnxruntime uses all cores with thread
spinning off (spinning threads steal the cores NumPy's BLAS needs when they run in turns).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import workbench as wb
from workbench import zoo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of timed runs per framework")
    p.add_argument("--cpu-threads", type=int, nargs="+", default=[None, 1],
                   help="BLAS threads of the engine's context (None: the BLAS default); one row each")
    p.add_argument("--append", help="append the result table to this markdown file")
    args = p.parse_args()

    path = zoo.resnet50(Path(tempfile.mkdtemp()) / "resnet50.onnx")
    net = wb.load_onnx(path)
    t0 = time.perf_counter()
    engines = {n: wb.build(net, wb.BuilderConfig(device="cpu", max_batch=args.batch, cpu_threads=n))
               for n in args.cpu_threads}
    build_s = (time.perf_counter() - t0) / len(engines)
    x = {"input": np.random.default_rng(0).standard_normal((args.batch, 3, 224, 224)).astype(np.float32)}

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    baseline = wb.baselines.OnnxRuntime(path, providers=["CPUExecutionProvider"], session_options=opts)
    want = baseline.infer(x)["logits"]
    got = next(iter(engines.values())).create_execution_context().execute(x)["logits"]
    err = float(np.linalg.norm(got - want) / np.linalg.norm(want))

    rows = []
    runners = [("onnxruntime", baseline)] + [(f"workbench (BLAS threads: {n or 'default'})", e)
                                             for n, e in engines.items()]
    for name, runner in runners:
        r = wb.bench(runner, inputs=x, duration_s=args.duration, warmup_ms=1000)
        lat = r.latency
        rows.append((name, lat["median"], lat["p99"], r.throughput))
    ratio = min(r[1] for r in rows[1:]) / rows[0][1]
    table = [f"### {datetime.date.today()} — ResNet-50 fp32, CPU, batch {args.batch}",
             "", f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores. "
             f"Command: `python benchmarks/bench_cpu.py --batch {args.batch} --duration {args.duration}`; "
             f"load average before the run {os.getloadavg()[0]:.1f}. "
             f"Engine build {build_s:.1f} s; relative L2 error vs onnxruntime {err:.1e}.", "",
             "| runner | median ms | p99 ms | inferences/s |", "|---|---|---|---|"]
    table += [f"| {n} | {m:.2f} | {p:.2f} | {t:.1f} |" for n, m, p, t in rows]
    table += ["", f"best workbench / onnxruntime median latency: **{ratio:.2f}×** (target ≤ 3×).", ""]
    text = "\n".join(table)
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
