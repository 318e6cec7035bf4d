"""Probe: the generated int8 tensor-core kernel (backends/cuda/imma.py) on ResNet-50 and BERT shapes.

For each product, main-loop form (mma.sync, wgmma), tile and pipeline depth: the full epilogue and a trivial one (what the GEMM and memory cost alone),
next to references: an fp16 cupy.matmul of the same sizes and the bytes moved at 3 TB/s. Also the
rounding pass on the RGB stem's fp16 output (256x112x112x64).

    python benchmarks/probe_imma.py --out probe.json
"""
from __future__ import annotations

import argparse
import json

import cupy as cp
import numpy as np

from workbench.backends.cuda import imma
from workbench.backends.cuda.device import Device
from workbench.backends.cuda.lt import R8I, R32I, LtMatmul
from workbench.backends.cuda.quantized import _elementwise, _requantize_source, folded_lines

# name: rows (M), outputs (N), reduction (K), output dtype, residual dtype, activation
CASES = {
    "r50 s1 branch0 (first)": (802816, 64, 64, "int8", None, "Relu"),
    "r50 s1 branch0": (802816, 64, 256, "int8", None, "Relu"),
    "r50 s1 branch2 +res": (802816, 256, 64, "int8", "int8", "Relu"),
    "r50 s1 shortcut": (802816, 256, 64, "float16", None, None),
    "r50 s2 branch2 +res": (200704, 512, 128, "int8", "int8", "Relu"),
    "r50 s3 branch0": (50176, 256, 1024, "int8", None, "Relu"),
    "r50 s3 branch2 +res": (50176, 1024, 256, "int8", "int8", "Relu"),
    "r50 s4 branch2 +res": (12544, 2048, 512, "int8", "int8", "Relu"),
    "bert qkv": (8192, 768, 768, "float16", None, None),
    "bert qkv packed": (8192, 2304, 768, "float16", None, None),
    "bert ffn1 gelu->int8": (8192, 3072, 768, "int8", None, "Gelu"),
    "bert ffn2": (8192, 768, 3072, "float16", None, None),
}
SIZE = {"int8": 1, "float16": 2}


def timeit(fn, iters=20):
    fn()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    stop.synchronize()
    return cp.cuda.get_elapsed_time(start, stop) / iters


def lt_int8(x, w, m: int, n: int, k: int):
    """The fastest of cuBLASLt's heuristic int8 -> int32 algorithms (no epilogue): the library's product speed."""
    dev = Device()
    mm = LtMatmul(dev, m, n, k, R8I, R32I)
    acc, one = cp.empty((m, n), cp.int32), np.ones(1, np.int32)
    try:
        return min(timeit(lambda: mm(x, w, acc, one, algo=a)) for a in range(mm.count))
    finally:
        dev.close()


def recipe(out, residual, act):
    grid = [0.05, 0, -128, 127] if out == "int8" else None
    return {"acc": "int32", "bias": "int32", "residual": residual, "r_grid": [0.03, 0] if residual else None,
            "fp8": False, "act": [act, None, None] if act else None, "grid": grid, "fp8_grid": None,
            "y_int": "int8" if out == "int8" else None, "out": out}


def variants(r, k):
    full = folded_lines(r, k * 128 * 127 < 2 ** 22)
    trivial = ["y = (signed char)(acc >> 10);"] if r["y_int"] else ["y = (float)acc;"]
    return {"full": (full, ("alpha", "beta")), "trivial": (trivial, ())}


def stem_implicit(rng) -> dict:
    """ResNet-50's stem (7x7/2, C=3 padded to 4, b256) as the implicit-GEMM kernel, plain (4-byte loads)
    and folded space-to-depth (16-byte loads), and the passes that quantize the NCHW float32 image."""
    from workbench.backends.cuda.conv import Geometry
    from workbench.backends.cuda.quantized import _nhwc_kernel, _quantize_source, space_to_depth

    g = Geometry(256, 3, 224, 224, 64, 3, 7, 7, 1, (2, 2), (1, 1), (3, 3), (3, 3), 112, 112)
    plain, folded = imma.patches(g, 4), space_to_depth(g, 4)
    stage1 = imma.patches(Geometry(256, 64, 56, 56, 64, 64, 3, 3, 1, (1, 1), (1, 1), (1, 1), (1, 1), 56, 56), 64)
    alpha = cp.asarray(rng.uniform(1e-5, 1e-4, 64).astype(np.float32))
    beta = cp.asarray(rng.uniform(-1, 1, 64).astype(np.float32))
    lines = folded_lines(recipe("int8", None, "Relu"), True)
    out = {}
    for label, conv, k in (("plain", plain, 208), ("s2d", folded, folded["r"] * folded["s"] * folded["c"]),
                           ("stage-1 3x3", stage1, 576)):
        y = cp.empty((256 * conv["p"] * conv["q"], 64), np.int8)
        x = cp.asarray(rng.integers(-127, 128, (256, conv["h"], conv["w"], conv["c"]), dtype=np.int8))
        w = cp.asarray(rng.integers(-127, 128, (64, k), dtype=np.int8))
        for mma in imma.forms():
            for bm, bn, stages in imma.configs(64, k, "int8", None, mma):
                kern = imma.ImmaKernel(lines, ("alpha", "beta"), None, "int8", bm, bn, stages, conv, mma,
                                       imma.holds_whole(k, stages, mma))
                out[f"stem {label} {mma} {bm}x{bn}x{stages}"] = timeit(lambda: kern(x, w, alpha, beta, None, y))
        del x, w
    image = cp.asarray(rng.standard_normal((256, 3, 224, 224)), cp.float32)
    _, _, op, name = _quantize_source({"in": "float32", "out": "int8", "fp8": False, "scale": 0.02, "lo": -128,
                                      "hi": 127, "offset": 0})
    for fold in (1, 2):
        quant = _nhwc_kernel("float32", image.shape, 4, fold, op, name)
        pixels = 256 * 224 * 224 // fold // fold
        q = cp.empty(256 * 224 * 224 * 4, np.int8)
        out[f"stem NCHW -> NHWC int8 pass, fold {fold}"] = timeit(
            lambda: quant((-(-pixels // 256),), (256,), (image, q, np.int64(pixels))))
    print(out, flush=True)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=None)
    p.add_argument("--cases", nargs="*", default=None, help="only the cases whose names contain one of these")
    p.add_argument("--only", default=None, help="only the kernels whose labels contain this (e.g. 'full wgmma 128x128x5')")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    for name, (m, n, k, out, residual, act) in CASES.items():
        if args.cases is not None and not any(c in name for c in args.cases):
            continue
        x = cp.asarray(rng.integers(-127, 128, (m, k), dtype=np.int8))
        w = cp.asarray(rng.integers(-127, 128, (n, k), dtype=np.int8))
        alpha = cp.asarray(rng.uniform(1e-5, 1e-4, n).astype(np.float32))
        beta = cp.asarray(rng.uniform(-1, 1, n).astype(np.float32))
        res = cp.asarray(rng.integers(-127, 128, (m, n), dtype=np.int8)) if residual else None
        y = cp.empty((m, n), out)
        moved = m * k + n * k + m * n * SIZE[out] + (m * n if residual else 0)
        row = {"bytes_at_3TBps_ms": moved / 3e9, "fp16_matmul_ms": None}
        a16, b16 = cp.asarray(rng.standard_normal((m, k)), cp.float16), cp.asarray(rng.standard_normal((k, n)), cp.float16)
        row["fp16_matmul_ms"] = timeit(lambda: cp.matmul(a16, b16))
        del a16, b16
        row["cublaslt_int8_int32_ms"] = lt_int8(x, w, m, n, k)
        r = recipe(out, residual, act)
        for vname, (lines, columns) in variants(r, k).items():
            vectors = [alpha, beta][:len(columns)]
            every = [(f, *t, s) for f in imma.forms() if f != "tma" for t in imma.tiles(f) for s in imma.stage_range(k, f)]
            fed = [("tma", *c) for c in imma.configs(n, k, out, residual, "tma")] if "tma" in imma.forms() else []
            for mma, bm, bn, stages in fed + every:
                if imma.layout(bm, bn, stages, out, residual, mma) is None:
                    continue
                label = f"{vname} {mma} {bm}x{bn}x{stages}"
                if args.only is not None and args.only not in label:
                    continue
                try:
                    kern = imma.ImmaKernel(lines, columns, residual, out, bm, bn, stages, None, mma,
                                           imma.holds_whole(k, stages, mma))
                    row[label] = timeit(lambda: kern(x, w, *vectors, res, y))
                    row[label + " registers, local bytes"] = list(kern.registers())
                except Exception as e:  # noqa: BLE001
                    row[label] = f"{type(e).__name__}: {e}"[:200]
        results[name] = row
        best = min(((v, kk) for kk, v in row.items() if isinstance(v, float) and kk.startswith("full")),
                   default=(float("nan"), "-"))
        print(f"{name:24s} fp16 matmul {row['fp16_matmul_ms']:.3f}  cuBLASLt int8 {row['cublaslt_int8_int32_ms']:.3f}  "
              f"bytes {row['bytes_at_3TBps_ms']:.3f}  best {best[1]} {best[0]:.3f}  " +
              "  ".join(f"{kk}={v:.3f}" for kk, v in row.items() if isinstance(v, float) and " " in kk), flush=True)
        del x, w, res, y
        cp.get_default_memory_pool().free_all_blocks()
    if args.cases is None or any("stem" in c for c in args.cases):
        results.update(stem_implicit(rng))
        stem = cp.asarray(rng.standard_normal((256, 112, 112, 64)), cp.float16)
        k = _elementwise({"in": "float16", "grid": [0.05, 0, -128, 127], "y_int": "int8"}, _requantize_source)
        results["stem rounding pass (reciprocal)"] = timeit(lambda: k(stem))
        print({k: v for k, v in results.items() if k.startswith("stem")})
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
