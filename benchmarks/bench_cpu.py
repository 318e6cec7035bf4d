"""A zoo CNN on the CPU: workbench fp32 engines against onnxruntime, side by side in one process.

    python benchmarks/bench_cpu.py [--model resnet50|mobilenet_v2] [--batch 1] [--rounds 20]
                                   [--cpu-threads auto 2] [--append benchmarks/RESULTS.md]

Every runner runs the same model on the same inputs, in turns (one inference each per round), so
that load from other processes hits them alike: compare the columns of one run, not across runs.
Engines with several BLAS threads run last, alone (their spinning threads would slow the others).
onnxruntime runs with all cores (thread spinning off: spinning threads steal the cores the others
need) and with one thread. "CPU ms" is the process CPU time per inference: for one-thread runners
it is the work done, whatever the load; for threaded ones it includes threads busy-waiting.
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


def _ort(path, threads: int | None):
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _threads(value: str):
    return None if value == "auto" else int(value)


def _time_in_turns(runners: dict, rounds: int) -> dict:
    """{name: (wall ms per inference list, CPU ms per inference)}, runners taking turns."""
    wall = {name: [] for name in runners}
    cpu = dict.fromkeys(runners, 0.0)
    for _ in range(rounds):
        for name, run in runners.items():
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            wall[name].append(1e3 * (time.perf_counter() - w0))
            cpu[name] += 1e3 * (time.process_time() - c0)
    return {name: (wall[name], cpu[name] / rounds) for name in runners}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50", choices=["resnet50", "mobilenet_v2"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=20, help="timed inferences per runner")
    p.add_argument("--cpu-threads", type=_threads, nargs="+", default=[None, 2],
                   help="BLAS threads of the engine's context ('auto': the backend's choice); one row each")
    p.add_argument("--append", help="append the result table to this markdown file")
    args = p.parse_args()

    path = getattr(zoo, args.model)(Path(tempfile.mkdtemp()) / f"{args.model}.onnx")
    net = wb.load_onnx(path)
    t0 = time.perf_counter()
    engines = {n: wb.build(net, wb.BuilderConfig(device="cpu", max_batch=args.batch, cpu_threads=n))
               for n in args.cpu_threads}
    build_s = (time.perf_counter() - t0) / len(engines)
    name = net.inputs[0]
    x = {name: np.random.default_rng(0).standard_normal((args.batch, 3, 224, 224)).astype(np.float32)}
    sessions = {"onnxruntime (all cores)": _ort(path, None), "onnxruntime (1 thread)": _ort(path, 1)}
    want = next(iter(sessions.values())).run(None, x)[0]
    contexts = {f"workbench (BLAS threads: {e.report.get('blas_threads')}{'' if n else ', auto'})":
                e.create_execution_context() for n, e in engines.items()}
    got = next(iter(contexts.values())).execute(x)
    got = got[net.outputs[0]]
    err = float(np.linalg.norm(got - want) / np.linalg.norm(want))

    runners = {k: (lambda s=s: s.run(None, x)) for k, s in sessions.items()}
    runners.update({k: (lambda c=c: c.execute(x)) for k, c in contexts.items()})
    for run in runners.values():  # warm up
        run()
    load = os.getloadavg()[0]
    # BLAS threads keep spinning after a call, slowing whatever runs next: threaded engines go last, alone
    threaded = [k for k, e in zip(contexts, engines.values()) if e.report.get("blas_threads", 1) > 1]
    results = _time_in_turns({k: r for k, r in runners.items() if k not in threaded}, args.rounds)
    for k in threaded:
        results.update(_time_in_turns({k: runners[k]}, args.rounds))
    base = np.median(results["onnxruntime (all cores)"][0])
    table = [f"### {datetime.date.today()} — {args.model} fp32, CPU, batch {args.batch}", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
             f"{load:.1f} at the start. Command: `python benchmarks/bench_cpu.py --model {args.model} --batch "
             f"{args.batch} --rounds {args.rounds}`. Engine build {build_s:.1f} s; relative L2 error vs "
             f"onnxruntime {err:.1e}.", "",
             "| runner | median ms | min ms | CPU ms | median / onnxruntime (all cores) |", "|---|---|---|---|---|"]
    table += [f"| {n} | {np.median(w):.1f} | {min(w):.1f} | {c:.1f} | {np.median(w) / base:.2f}× |"
              for n, (w, c) in results.items()]
    text = "\n".join(table + [""])
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
