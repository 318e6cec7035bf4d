"""Probe: which low-precision GEMM/conv building blocks run from CuPy on this card, and how fast.

Run on the device:  python3 benchmarks/probe_lowp.py --out $OUT/probe.json
Each case is tried on its own; a failure is recorded with its message and the probe goes on.
Correctness: every case is compared with a float64/float32 reference on fresh random inputs.
"""
from __future__ import annotations

import argparse
import json
import traceback

import cupy as cp
import numpy as np

from nvmath.bindings import cublas
from nvmath.bindings import cublasLt as lt

R16F, R32F, R8I, R32I, E4M3 = 2, 0, 3, 10, 28
NAMES = {R16F: "f16", R32F: "f32", R8I: "i8", R32I: "i32", E4M3: "e4m3"}
HANDLE = lt.create()
WS = cp.empty(64 << 20, np.uint8)


def timeit(fn, iters=20):
    for _ in range(3):
        fn()
    s, e = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(iters):
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(cp.cuda.get_elapsed_time(s, e))
    return float(np.median(times))


def set_attr(desc, attr, value):
    buf = np.array(value, dtype=lt.get_matmul_desc_attribute_dtype(attr))
    lt.matmul_desc_set_attribute(desc, attr, buf.ctypes.data, buf.itemsize)


def lt_matmul(m, n, k, ab, d, compute, scale, epilogue=None, alpha_vec=False, bias=None, ab_scales=None):
    """D (m, n) row-major = X (m, k) . W (n, k)^T, as cuBLASLt TN; returns a run closure and the heuristic count."""
    desc = lt.matmul_desc_create(compute, scale)
    A = lt.MatmulDescAttribute
    set_attr(desc, A.TRANSA, cublas.Operation.T)
    set_attr(desc, A.TRANSB, cublas.Operation.N)
    if alpha_vec:
        set_attr(desc, A.POINTER_MODE, lt.PointerMode.ALPHA_DEVICE_VECTOR_BETA_ZERO)
    if epilogue is not None:
        set_attr(desc, A.EPILOGUE, epilogue)
    if bias is not None:
        set_attr(desc, A.BIAS_POINTER, bias.data.ptr)
        set_attr(desc, A.BIAS_DATA_TYPE, {np.dtype(np.float16): R16F, np.dtype(np.float32): R32F,
                                          np.dtype(np.int32): R32I}[bias.dtype])
    if ab_scales is not None:
        set_attr(desc, A.A_SCALE_POINTER, ab_scales[0].data.ptr)
        set_attr(desc, A.B_SCALE_POINTER, ab_scales[1].data.ptr)
    a_l = lt.matrix_layout_create(ab, k, n, k)
    b_l = lt.matrix_layout_create(ab, k, m, k)
    c_type = R16F if (ab == E4M3 and d == E4M3) else d
    c_l = lt.matrix_layout_create(c_type, n, m, n)
    d_l = lt.matrix_layout_create(d, n, m, n)
    pref = lt.matmul_preference_create()
    buf = np.array(WS.nbytes, dtype=lt.get_matmul_preference_attribute_dtype(lt.MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES))
    lt.matmul_preference_set_attribute(pref, lt.MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES, buf.ctypes.data, buf.itemsize)
    res = lt.MatmulHeuristicResult(8)
    count = np.zeros(1, np.int32)
    lt.matmul_algo_get_heuristic(HANDLE, desc, a_l, b_l, c_l, d_l, pref, 8, res.ptr, count.ctypes.data)
    count = int(count[0])
    if count == 0:
        raise RuntimeError("no algorithm")

    def run(alpha, x, w, out, algo=0):
        beta = np.zeros(1, np.float32 if scale == R32F else np.int32)
        lt.matmul(HANDLE, desc, alpha, w.data.ptr, a_l, x.data.ptr, b_l, beta.ctypes.data, out.data.ptr, c_l,
                  out.data.ptr, d_l, res[algo]["algo"].ctypes.data,
                  WS.data.ptr, WS.nbytes, cp.cuda.get_current_stream().ptr)
    return run, count


GEMMS = [("bert-qkv", 8192, 768, 768), ("bert-ff1", 8192, 3072, 768), ("bert-ff2", 8192, 768, 3072),
         ("rn-1x1-a", 802816, 64, 256), ("rn-1x1-b", 802816, 256, 64), ("rn-1x1-c", 50176, 256, 1024),
         ("rn-3x3-im2col-l1", 802816, 64, 576), ("rn-3x3-im2col-l3", 50176, 256, 2304)]


def gemm_cases(results):
    E = lt.Epilogue
    C32I, C32F = cublas.ComputeType.COMPUTE_32I, cublas.ComputeType.COMPUTE_32F
    for name, m, n, k in GEMMS:
        flops = 2 * m * n * k
        x8 = cp.random.randint(-127, 128, (m, k), dtype=np.int8)
        w8 = cp.random.randint(-127, 128, (n, k), dtype=np.int8)
        ref = x8[:2048].astype(np.float32) @ w8.astype(np.float32).T
        alpha_v = cp.asarray(np.random.uniform(1e-4, 2e-4, n).astype(np.float32))
        bias16 = cp.asarray(np.random.randn(n).astype(np.float16))
        configs = [
            ("i8->i32", R8I, R32I, C32I, R32I, None, False, None),
            ("i8->i8 alpha-scalar", R8I, R8I, C32I, R32F, None, False, None),
            ("i8->i8 alpha-vec", R8I, R8I, C32I, R32F, None, True, None),
            ("i8->i8 alpha-vec relu", R8I, R8I, C32I, R32F, E.RELU, True, None),
            ("i8->i8 alpha-vec bias16", R8I, R8I, C32I, R32F, E.BIAS, True, bias16),
            ("i8->f16 alpha-vec", R8I, R16F, C32I, R32F, None, True, None),
            ("i8->f16 alpha-vec relu-bias", R8I, R16F, C32I, R32F, E.RELU_BIAS, True, bias16),
            ("i8->f32 alpha-vec", R8I, R32F, C32I, R32F, None, True, None),
        ]
        for label, ab, d, comp, sc, epi, vec, bias in configs:
            key = f"gemm {name} {label}"
            try:
                run, count = lt_matmul(m, n, k, ab, d, comp, sc, epi, vec, bias)
                out = cp.empty((m, n), {R32I: np.int32, R8I: np.int8, R16F: np.float16, R32F: np.float32}[d])
                if vec:
                    alpha = alpha_v.data.ptr
                else:
                    host_alpha = np.ones(1, np.int32) if sc == R32I else np.full(1, 1.5e-4, np.float32)
                    alpha = host_alpha.ctypes.data
                best = min(timeit(lambda a=i: run(alpha, x8, w8, out, a)) for i in range(min(count, 4)))
                run(alpha, x8, w8, out, 0)
                got = out[:2048].astype(np.float32)
                if sc == R32I:
                    want = ref
                else:
                    s = alpha_v if vec else cp.float32(1.5e-4)
                    want = ref * s
                    if bias is not None:
                        want = want + bias.astype(np.float32)
                    if epi in (E.RELU, E.RELU_BIAS):
                        want = cp.maximum(want, 0)
                    if d == R8I:
                        want = cp.clip(cp.rint(want), -128, 127)
                err = float(cp.abs(got - want).max())
                results[key] = {"ms": best, "tops": flops / best / 1e9, "algos": count, "max_abs_err": err}
            except Exception as e:  # noqa: BLE001 - a probe records every failure and goes on
                results[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
            print(key, results[key], flush=True)
        # fp16 reference and fp8
        try:
            x16, w16 = x8.astype(np.float16), w8.astype(np.float16)
            run, count = lt_matmul(m, n, k, R16F, R16F, C32F, R32F)
            out = cp.empty((m, n), np.float16)
            one = np.ones(1, np.float32)
            best = min(timeit(lambda a=i: run(one.ctypes.data, x16, w16, out, a)) for i in range(min(count, 4)))
            results[f"gemm {name} f16->f16"] = {"ms": best, "tops": flops / best / 1e9, "algos": count}
            results[f"gemm {name} cupy.matmul f16"] = {"ms": timeit(lambda: cp.matmul(x16, w16.T))}
        except Exception as e:  # noqa: BLE001
            results[f"gemm {name} f16->f16"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        for label, epi, bias in (("e4m3->f16", None, None), ("e4m3->f16 gelu-bias", E.GELU_BIAS, bias16)):
            key = f"gemm {name} {label}"
            try:
                # small integers are exact in E4M3 up to 16; use values -8..8 as bits via fp16 -> e4m3 encode
                xs = cp.random.randint(-8, 9, (m, k)).astype(np.float32)
                ws_ = cp.random.randint(-8, 9, (n, k)).astype(np.float32)
                x_e, w_e = encode_e4m3(xs), encode_e4m3(ws_)
                sa, sb = cp.asarray([0.5], np.float32), cp.asarray([0.25], np.float32)
                run, count = lt_matmul(m, n, k, E4M3, R16F, C32F, R32F, epi, False, bias, (sb, sa))
                out = cp.empty((m, n), np.float16)
                alpha = np.full(1, 0.01, np.float32)
                best = min(timeit(lambda a=i: run(alpha.ctypes.data, x_e, w_e, out, a)) for i in range(min(count, 4)))
                run(alpha.ctypes.data, x_e, w_e, out, 0)
                want = (xs[:512] @ ws_.T) * (0.01 * 0.5 * 0.25)
                if bias is not None:
                    want = want + bias.astype(np.float32)
                    want = 0.5 * want * (1 + cp.tanh(0.7978845608 * (want + 0.044715 * want ** 3)))
                err = float(cp.abs(out[:512].astype(np.float32) - want).max() / (cp.abs(want).max() + 1e-9))
                results[key] = {"ms": best, "tops": flops / best / 1e9, "algos": count, "rel_err": err}
            except Exception as e:  # noqa: BLE001
                results[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
            print(key, results[key], flush=True)


def encode_e4m3(v):
    """float32 values exactly representable in E4M3 -> uint8 bits (sign, 4 exponent bits bias 7, 3 mantissa)."""
    v = cp.asarray(v, np.float32)
    sign = (v < 0).astype(np.uint8) << 7
    a = cp.abs(v)
    e = cp.floor(cp.log2(cp.maximum(a, 2.0 ** -6))).astype(np.int32)
    mant = cp.rint(a / cp.exp2(e.astype(np.float32)) * 8 - 8).astype(np.int32)
    normal = ((e + 7) << 3) | mant
    sub = cp.rint(a / 2.0 ** -9).astype(np.int32)
    bits = cp.where(a >= 2.0 ** -6, normal, sub).astype(np.uint8)
    return (bits | sign).astype(np.uint8)


def plans(cudnn, g, mode_name: str) -> None:
    """Validate a cuDNN graph and build every plan the heuristics mode offers (execute runs the first)."""
    g.validate()
    g.build_operation_graph()
    g.create_execution_plans([getattr(cudnn.heur_mode, mode_name)])
    g.check_support()
    g.build_plans(cudnn.build_plan_policy.ALL)


CONVS = [("l1-3x3", 256, 56, 56, 64, 64), ("l3-3x3", 256, 14, 14, 256, 256)]


def conv_cases(results):
    import cudnn
    handle = cudnn.create_handle()
    dt = cudnn.data_type
    for name, n, h, w, c, k in CONVS:
        flops = 2 * n * h * w * c * k * 9
        xs = cp.random.randint(-8, 9, (n, h, w, c)).astype(np.float32)
        ws_ = cp.random.randint(-8, 9, (k, 3, 3, c)).astype(np.float32)
        variants = [("f16->f16 relu", dt.HALF, dt.HALF, lambda a: a.astype(np.float16)),
                    ("i8->f32", dt.INT8, dt.FLOAT, lambda a: a.astype(np.int8)),
                    ("i8->i8", dt.INT8, dt.INT8, lambda a: a.astype(np.int8)),
                    ("e4m3->f16 scaled", dt.FP8_E4M3, dt.HALF, encode_e4m3),
                    ("e4m3->f16 scaled relu", dt.FP8_E4M3, dt.HALF, encode_e4m3)]
        for label, io, out_t, enc in variants:
            for mode_name in ("A", "B", "FALLBACK"):
                key = f"conv {name} {label} heur-{mode_name}"
                try:
                    comp = dt.INT32 if io == dt.INT8 else dt.FLOAT
                    g = cudnn.pygraph(io_data_type=io, intermediate_data_type=dt.FLOAT, compute_data_type=comp,
                                      handle=handle)
                    X = g.tensor(name="X", dim=[n, c, h, w], stride=[h * w * c, 1, w * c, c], data_type=io)
                    W = g.tensor(name="W", dim=[k, c, 3, 3], stride=[9 * c, 1, 3 * c, c], data_type=io)
                    y = g.conv_fprop(image=X, weight=W, pre_padding=[1, 1], post_padding=[1, 1], stride=[1, 1],
                                     dilation=[1, 1], compute_data_type=comp)
                    tens = {X: None, W: None}
                    if "scaled" in label:
                        S = g.tensor(name="S", dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=dt.FLOAT)
                        y = g.mul(a=y, b=S)
                        tens[S] = None
                    if "relu" in label:
                        y = g.relu(input=y)
                    y.set_output(True).set_data_type(out_t).set_dim([n, k, h, w]).set_stride([h * w * k, 1, w * k, k])
                    plans(cudnn, g, mode_name)
                    xd, wd = enc(xs), enc(ws_)
                    npdt = {dt.HALF: np.float16, dt.FLOAT: np.float32, dt.INT8: np.int8}[out_t]
                    yd = cp.empty((n, h, w, k), npdt)
                    ws_bytes = g.get_workspace_size()
                    wsb = cp.empty(max(ws_bytes, 1), np.uint8)
                    pack = {X: xd.data.ptr, W: wd.data.ptr, y: yd.data.ptr}
                    if "scaled" in label:
                        sd = cp.asarray([0.01], np.float32)
                        pack[S] = sd.data.ptr
                    t = timeit(lambda: g.execute(pack, wsb, handle=handle))
                    results[key] = {"ms": t, "tops": flops / t / 1e9, "plans": int(g.get_execution_plan_count())}
                except Exception as e:  # noqa: BLE001
                    results[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
                print(key, results[key], flush=True)


IM2COL = r"""
extern "C" __global__ void im2col3x3(const int* __restrict__ x, int* __restrict__ col, int n, int h, int w, int c4) {
    // one thread per (pixel, tap, 4-channel group); NHWC int8 read as int (4 channels); pad 1, stride 1
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long total = (long long)n * h * w * 9 * c4;
    if (i >= total) return;
    int cc = i % c4; long long t = i / c4; int tap = t % 9; long long pix = t / 9;
    int q = pix % w; long long r = pix / w; int p = r % h; int b = r / h;
    int y = p + tap / 3 - 1, xx = q + tap % 3 - 1;
    int v = 0;
    if (y >= 0 && y < h && xx >= 0 && xx < w) v = x[(((long long)b * h + y) * w + xx) * c4 + cc];
    col[i] = v;
}
"""


def im2col_cases(results):
    kern = cp.RawKernel(IM2COL, "im2col3x3")
    for name, n, h, w, c, k in CONVS:
        x = cp.random.randint(-127, 128, (n, h, w, c), dtype=np.int8)
        col = cp.empty((n * h * w, 9 * c), np.int8)
        total = n * h * w * 9 * (c // 4)
        t = timeit(lambda: kern(((total + 255) // 256,), (256,), (x, col, np.int32(n), np.int32(h), np.int32(w),
                                                                  np.int32(c // 4))))
        results[f"im2col {name}"] = {"ms": t, "GBps": (col.nbytes + x.nbytes) / t / 1e6}
        print(f"im2col {name}", results[f"im2col {name}"], flush=True)


def int8_fusion_cases(results):
    """cuDNN int8 convolutions with the requantizing epilogue fused (per-channel scale, bias, residual, ReLU)."""
    import cudnn
    handle = cudnn.create_handle()
    dt = cudnn.data_type
    shapes = [("l1-3x3", 256, 56, 56, 64, 64, 3), ("l1-1x1", 256, 56, 56, 64, 256, 1),
              ("l3-3x3", 256, 14, 14, 256, 256, 3)]
    variants = ["scale", "scale-bias-relu", "scale-bias-res8-relu", "scale-bias-res16-relu", "scale-bias-relu->f16"]
    for name, n, h, w, c, k, r in shapes:
        flops = 2 * n * h * w * c * k * r * r
        for v in variants:
            for mode_name in ("A", "B"):
                key = f"i8conv {name} {v} heur-{mode_name}"
                try:
                    g = cudnn.pygraph(io_data_type=dt.INT8, intermediate_data_type=dt.FLOAT,
                                      compute_data_type=dt.INT32, handle=handle)
                    X = g.tensor(name="X", dim=[n, c, h, w], stride=[h * w * c, 1, w * c, c], data_type=dt.INT8)
                    W = g.tensor(name="W", dim=[k, c, r, r], stride=[r * r * c, 1, r * c, c], data_type=dt.INT8)
                    pad = r // 2
                    y = g.conv_fprop(image=X, weight=W, pre_padding=[pad, pad], post_padding=[pad, pad],
                                     stride=[1, 1], dilation=[1, 1], compute_data_type=dt.INT32)
                    S = g.tensor(name="S", dim=[1, k, 1, 1], stride=[k, 1, k, k], data_type=dt.FLOAT)
                    y = g.mul(a=y, b=S, compute_data_type=dt.FLOAT)
                    bufs = {X: cp.random.randint(-127, 128, (n, h, w, c), dtype=np.int8),
                            W: cp.random.randint(-127, 128, (k, r, r, c), dtype=np.int8),
                            S: cp.asarray(np.random.uniform(1e-3, 2e-3, k).astype(np.float32))}
                    if "bias" in v:
                        B = g.tensor(name="B", dim=[1, k, 1, 1], stride=[k, 1, k, k], data_type=dt.FLOAT)
                        y = g.add(a=y, b=B, compute_data_type=dt.FLOAT)
                        bufs[B] = cp.asarray(np.random.randn(k).astype(np.float32))
                    if "res8" in v or "res16" in v:
                        rt = dt.INT8 if "res8" in v else dt.HALF
                        R = g.tensor(name="R", dim=[n, k, h, w], stride=[h * w * k, 1, w * k, k], data_type=rt)
                        RS = g.tensor(name="RS", dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=dt.FLOAT)
                        y = g.add(a=y, b=g.mul(a=R, b=RS, compute_data_type=dt.FLOAT), compute_data_type=dt.FLOAT)
                        bufs[R] = (cp.random.randint(-127, 128, (n, h, w, k), dtype=np.int8) if "res8" in v
                                   else cp.random.randn(n, h, w, k).astype(np.float16))
                        bufs[RS] = cp.asarray([0.05], np.float32)
                    if "relu" in v:
                        y = g.relu(input=y, compute_data_type=dt.FLOAT)
                    out_t, out_np = (dt.HALF, np.float16) if "f16" in v.split("->")[-1] else (dt.INT8, np.int8)
                    y.set_output(True).set_data_type(out_t).set_dim([n, k, h, w]).set_stride([h * w * k, 1, w * k, k])
                    plans(cudnn, g, mode_name)
                    yd = cp.empty((n, h, w, k), out_np)
                    bufs[y] = yd
                    wsb = cp.empty(max(g.get_workspace_size(), 1), np.uint8)
                    pack = {t: a.data.ptr for t, a in bufs.items()}
                    ms = timeit(lambda: g.execute(pack, wsb, handle=handle))
                    # reference on a slice of the batch: float64 conv via im2col-free tap sums
                    xf = bufs[X][:2].astype(np.float64)
                    wf = bufs[W].astype(np.float64)
                    xp = cp.pad(xf, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
                    acc = sum(cp.einsum("nhwc,kc->nhwk", xp[:, i:i + h, j:j + w, :], wf[:, i, j, :])
                              for i in range(r) for j in range(r))
                    ref = acc * bufs[S].astype(np.float64)
                    if "bias" in v:
                        ref = ref + bufs[B]
                    if "res" in v:
                        ref = ref + bufs[R][:2].astype(np.float64) * 0.05
                    if "relu" in v:
                        ref = cp.maximum(ref, 0)
                    if out_np == np.int8:
                        ref = cp.clip(cp.rint(ref), -128, 127)
                    diff = cp.abs(yd[:2].astype(np.float64) - ref)
                    results[key] = {"ms": ms, "tops": flops / ms / 1e9, "plans": int(g.get_execution_plan_count()),
                                    "max_abs_err": float(diff.max()), "frac_off": float((diff > 0.5).mean())}
                except Exception as e:  # noqa: BLE001
                    results[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
                print(key, results[key], flush=True)


def lt_int8_epilogue_cases(results):
    """cuBLASLt int8 -> int8 with a scalar alpha and a fused bias / ReLU epilogue."""
    E = lt.Epilogue
    m, n, k = 802816, 256, 64
    x8 = cp.random.randint(-127, 128, (m, k), dtype=np.int8)
    w8 = cp.random.randint(-127, 128, (n, k), dtype=np.int8)
    for label, epi, bias in (("relu", E.RELU, None), ("bias32f", E.BIAS, cp.ones(n, np.float32)),
                             ("relu-bias32f", E.RELU_BIAS, cp.ones(n, np.float32)),
                             ("relu-bias32i", E.RELU_BIAS, cp.ones(n, np.int32))):
        key = f"lt i8->i8 alpha-scalar {label}"
        try:
            run, count = lt_matmul(m, n, k, R8I, R8I, cublas.ComputeType.COMPUTE_32I, R32F, epi, False, bias)
            out = cp.empty((m, n), np.int8)
            alpha = np.full(1, 1.5e-4, np.float32)
            results[key] = {"ms": timeit(lambda: run(alpha.ctypes.data, x8, w8, out)), "algos": count}
        except Exception as e:  # noqa: BLE001
            results[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
        print(key, results[key], flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--parts", default="gemm_cases,conv_cases,im2col_cases")
    args = ap.parse_args()
    results = {"device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(), "cublasLt": lt.get_version()}
    for part in [globals()[p] for p in args.parts.split(",")]:
        try:
            part(results)
        except Exception:  # noqa: BLE001
            results[part.__name__] = traceback.format_exc()[-1500:]
            print(results[part.__name__], flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
