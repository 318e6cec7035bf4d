"""Probe: one optimization pass on and off, same model, same process, same inputs (an A/B of engines).

Builds the model's engine with the builder's full pass list and without `--drop`, then times both
engines alternately (CUDA-graph replays, CUDA events, median of --iters calls per round), so that a
pass's effect is not confused with the spread between runs. Also prints each engine's slowest layers
by the builder's own timings.

    python benchmarks/probe_passes.py --model bert:64 --drop pack_qkv --precision fp16
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import torch_models as tm  # noqa: E402
from bench_gpu import Timer  # noqa: E402


def build(onnx_path: str, feeds: dict, precision: str, passes: list):
    import cupy as cp

    import workbench as wb
    from workbench.passes import pipeline

    net = wb.load_onnx(onnx_path)
    saved = pipeline.PASSES
    pipeline.PASSES = passes
    try:
        profile = {k: (tuple(v.shape),) * 3 for k, v in feeds.items()}
        engine = wb.build(net, wb.BuilderConfig(device="cuda", precision=precision, profiles=[profile]))
    finally:
        pipeline.PASSES = saved
    per_layer = {name: min(c.values()) for name, c in engine.report.get("timings", {}).items() if c}
    return engine, engine.create_execution_context(), per_layer, cp


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="bert:64")
    p.add_argument("--drop", default="pack_qkv", help="the pass left out of engine B")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    from workbench.passes import pipeline

    name, batch = args.model.split(":")
    model = tm.make(name)
    path = os.path.join(tempfile.mkdtemp(), f"{name}.onnx")
    model.export(path)
    gen = torch.Generator(device="cuda").manual_seed(1)
    torch_feeds = [tm.inputs(name, int(batch), 128, "cuda", gen) for _ in range(3)]
    everything = list(pipeline.PASSES)
    without = [f for f in everything if f.__name__ != args.drop]
    if len(without) == len(everything):
        raise SystemExit(f"no pass named {args.drop}")
    engines = {}
    for label, passes in (("with", everything), ("without", without)):
        engine, ctx, per_layer, cp = build(path, {k: v.cpu() for k, v in torch_feeds[0].items()}, args.precision,
                                           passes)
        feeds = [{k: cp.from_dlpack(v.contiguous()) for k, v in f.items()} for f in torch_feeds]
        engines[label] = (engine, ctx, feeds, per_layer)
        top = sorted(per_layer.items(), key=lambda kv: -kv[1])[:6]
        print(f"{label} {args.drop}: {len(engine.network.layers)} layers, per-layer sum {sum(per_layer.values()):.3f} ms;"
              f" slowest {[(k, round(v, 4)) for k, v in top]}", flush=True)
    timer, results = Timer("cuda"), {k: [] for k in engines}
    for _ in range(args.rounds):
        for label, (_, ctx, feeds, _) in engines.items():
            lat = timer.run(lambda f: ctx.execute(f), feeds, 5, args.iters)
            results[label].append(lat["p50_ms"])
    a, b = (engines[k][1].execute(engines[k][2][0]) for k in engines)
    diff = max(float(np.max(np.abs(cp.asnumpy(a[o]).astype(np.float64) - cp.asnumpy(b[o]).astype(np.float64))))
               for o in a)
    print(f"{args.model} {args.precision}: p50 ms with {args.drop} {results['with']}, without {results['without']}; "
          f"max |difference| of the outputs {diff:.3g}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": args.model, "precision": args.precision, "drop": args.drop, "p50_ms": results,
                       "per_layer_sum_ms": {k: sum(v[3].values()) for k, v in engines.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
