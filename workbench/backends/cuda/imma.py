"""An int8 (or FP8) tensor-core GEMM with a quantized layer's epilogue fused, generated per recipe and
configuration.

    Y (M, N) = epilogue(Xq (M, K) . Wq (N, K)^T)      Xq, Wq int8, K-contiguous (the TN layout)

or, for a convolution (`conv`, an implicit GEMM), Xq's rows are the patches of an NHWC int8 image,
read in place. The operands may instead be E4M3 bits (operand "e4m3", float accumulators; the wgmma
forms only), with the same loads, slots and epilogue (OPERANDS). cuBLAS and cuDNN run int8 products on Hopper no faster than fp16 for ResNet's 1x1
convolutions once a per-channel requantization is attached (cuBLASLt takes no per-channel alpha for
int8; cuDNN sends a graph with a per-channel multiply to its runtime-fusion engine, 0.38 ms where
bandwidth allows 0.15 ms at 56x56x256, b256). This kernel reads int8, accumulates in registers and
writes int8 (or fp16) once; the epilogue is the caller's C statements (quantized.folded_lines: one
multiply-add per value).

Each block computes a BM x BN tile from K slices of X and W in shared memory and stages its outputs
there so that global stores are whole 16-byte vectors; a residual tile is loaded with the first K slice
where shared memory allows. The main loop takes one of four forms (FORMS), all timed as tactic candidates:

- "sync" (sm_80+): 256 threads load 64-byte slices by cp.async, `stages` in flight, rows padded to 80
  bytes so that ldmatrix reads them free of bank conflicts, each warp issuing mma.sync m16n8k32 on its
  sub-tile. 200-400 TOP/s.
- "wgmma" (sm_90a only, compiled through archcode.py): the same loaders; two warpgroups issue
  wgmma.mma_async m64nNk32 from shared memory in the 64-byte swizzle, the products of one slice in
  flight while the next is waited for; K of up to four slices is held whole. It reads a convolution's
  patches in place (the implicit GEMM): ResNet-50's stage-1 3x3 0.16 ms (cuDNN int8 0.18).
- "tma" (sm_90a, plain rows): a producer warp has the tensor memory accelerator bring 128-byte slices
  (tma.py's tensor maps, the 128-byte swizzle) into mbarrier-guarded slots, which the two warpgroups
  read; no thread computes load addresses. BERT's FFN2 0.041 ms (wgmma 0.075, cuBLAS fp16 0.056).
- "pingpong" (sm_90a, plain rows, no residual): tma's loads in persistent blocks whose two warpgroups
  take whole tiles in turn, one's epilogue overlapping the other's products. BERT's packed Q/K/V 0.039
  ms (tma 0.049, cuBLAS fp16 0.055).

Measured on an H100 with probe_imma.py (full epilogues); benchmarks/NOTES-gpu.md, session 6.

    >>> k = ImmaKernel(folded_lines(r, True), ("alpha", "beta"), "int8", "int8", 128, 128, 4, mma="wgmma")
    >>> k(xq, wq, alpha, beta, residual, y)          # CuPy arrays, y (M, N) preallocated
"""
from __future__ import annotations

import functools
import hashlib
import json

import numpy as np

from . import tma
from .archcode import ArchKernel
from .device import cp
from .pointwise import _PREAMBLE
from .stream import C_TYPES as _C
from .stream import HALF_TYPE

THREADS = 256
BK = 64
LDS = BK + 16            # bytes per shared row of X / W
SHARED_LIMIT = 112 << 10  # dynamic shared memory per block: two blocks still fit an SM (228 KB on Hopper)
MIN_MAJOR = 8              # mma.sync int8 m16n8k32 and cp.async: Ampere and later
PORTABLE_SHARED = 48 << 10  # beyond this a kernel must opt in (max_dynamic_shared_size_bytes)
MAX_STAGES = 4
# The main loop's forms: "sync" (mma.sync, any sm_80+ card), "wgmma" (Hopper's warpgroup MMA, sm_90a
# only: the "a" target runs on no later architecture), "tma" (wgmma fed by the tensor memory accelerator
# from a producer warp) and "pingpong" (tma's loads in persistent blocks, a warpgroup a tile). wgmma reads
# both operands from shared memory in its 64-byte swizzle (_at), so a K slice's rows are unpadded there;
# the fed forms' slices are 128 bytes deep in the 128-byte swizzle.
FORMS = ("sync", "wgmma", "tma", "pingpong")
FED = ("tma", "pingpong")   # the forms whose operands the tensor memory accelerator brings
TMA_BK = tma.BOX_BYTES
ROW_BYTES = {"sync": LDS, "wgmma": BK, "tma": TMA_BK, "pingpong": TMA_BK}
TMA_THREADS = THREADS + 32  # two consumer warpgroups (warps 0-7) and the producer warp
TMA_TILES = ((128, 256), (256, 128), (128, 128), (64, 256), (128, 64))
PINGPONG_TILES = ((128, 128), (64, 256), (128, 64))  # one warpgroup's: up to 128 accumulators a thread
TMA_STAGES = (2, 6)         # slots: the producer refills one as soon as both warpgroups are done with it
TMA_ALIGN = 1024            # the 128-byte swizzle repeats every 8 rows: slots start on 1024-byte boundaries
WGMMA_MAJOR = 9
WGMMA_STAGES = (3, 5)      # slots: one being read by a wgmma in flight, one by the next, the rest loading
TILES = ((128, 128), (128, 64), (64, 128), (64, 64))  # by how often each was fastest (probe_imma.py, H100)
# wgmma also takes tiles of 128 accumulators a thread: each block reads half as many bytes per product
WGMMA_TILES = ((128, 128), (64, 128), (64, 256), (256, 128), (128, 64), (128, 256), (64, 64))  # probe_imma.py, H100
_SIZE = {"int8": 1, "uint8": 1, "float16": 2, "float32": 4}
_KERNELS: dict = {}
# What the operands hold: int8 integers (s32 accumulators) or E4M3 bits (f32 accumulators, sm_90a's
# wgmma only). The generators write wb_acc, WB_ACC (its asm constraint) and the wgmma's type suffix and
# trailing operands (the float variants take the operands' signs) as these macros give them.
OPERANDS = {
    "int8": 'typedef int wb_acc;\n#define WB_ACC "+r"\n#define WB_MMA_TYPES "s32.s8.s8"\n#define WB_MMA_SIGNS ""\n',
    "e4m3": 'typedef float wb_acc;\n#define WB_ACC "+f"\n#define WB_MMA_TYPES "f32.e4m3.e4m3"\n'
            '#define WB_MMA_SIGNS ", 1, 1"\n',
}

# Exact integer <-> float arithmetic on the FP32 pipes: Hopper converts (I2F, F2I, FRND) at 16 per
# clock and SM against 128 FMAs. Each helper returns exactly what the conversion would. (Measured:
# no visible change yet; the passes using them were bound by other costs, probe_imma.py.)
EXACT = r"""
__device__ inline float wb_i2f(int i) {  // (float)i, correctly rounded: two exact halves, one rounding
  float hi = __fmul_rn(__fsub_rn(__int_as_float(0x4B400000 + (i >> 16)), 12582912.0f), 65536.0f);
  float lo = __fsub_rn(__int_as_float(0x4B000000 | (i & 0xFFFF)), 8388608.0f);
  return __fadd_rn(hi, lo);
}
__device__ inline float wb_small_i2f(int i) {  // (float)i for |i| < 2**22
  return __fsub_rn(__int_as_float(0x4B400000 + i), 12582912.0f);
}
__device__ inline int wb_small_f2i(float f) {  // (int)f for an integer-valued |f| < 2**22
  return __float_as_int(__fadd_rn(f, 12582912.0f)) - 0x4B400000;
}
__device__ inline float wb_sum_i2f(int a, long long b) {  // (float)(a + b), 64-bit only when it overflows
  long long s = (long long)a + b;
  return s == (long long)(int)s ? wb_i2f((int)s) : (float)s;
}
__device__ inline float wb_rint(float q) {  // rintf(q) for |q| < 2**22; q itself beyond (callers saturate)
  return fabsf(q) < 4194304.0f ? __fsub_rn(__fadd_rn(q, 12582912.0f), 12582912.0f) : q;
}
// GELU, x * (1 + erf(x / sqrt 2)) / 2, with erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, far below
// an int8 or fp16 output's step): a reciprocal, an exponential and five FMAs, no branch (erff: ~30)
__device__ inline float wb_gelu(float x) {
  const float z = fabsf(x) * 0.70710678118654752f;
  const float t = __fdividef(1.0f, fmaf(0.3275911f, z, 1.0f));
  const float p = t * fmaf(t, fmaf(t, fmaf(t, fmaf(t, 1.061405429f, -1.453152027f), 1.421413741f), -0.284496736f),
                           0.254829592f);
  const float e = fmaf(-p, __expf(-z * z), 1.0f);
  return 0.5f * x * (1.0f + copysignf(e, x));
}
// rintf(v / s) with the IEEE quotient, for callers saturating beyond +-2**22: v * (1 / s) is within an
// ulp or two of the quotient, which moves the rounded integer only at a half: there the division runs
__device__ inline float wb_div_rint(float v, float inv, float s) {
  float q = __fmul_rn(v, inv);
  float r = wb_rint(q);
  if (fabsf(fabsf(__fsub_rn(q, r)) - 0.5f) < 0.001f) r = wb_rint(__fdiv_rn(v, s));
  return r;
}
"""

def _staged(bm: int, bn: int, dtype: str | None) -> int:
    """Bytes of a BM x BN tile of `dtype` staged in shared memory (rows padded by 16 bytes)."""
    return bm * (bn * _SIZE[dtype] + 16) if dtype else 0


@functools.lru_cache(maxsize=None)
def _device(device_id: int) -> tuple:
    props = cp.cuda.runtime.getDeviceProperties(device_id)
    return int(props.get("major", 0)), int(props.get("sharedMemPerBlockOptin", SHARED_LIMIT))


def missing(mma: str = "sync") -> str | None:
    """Why the current device cannot run the kernel's `mma` form, or None."""
    major = _device(cp.cuda.Device().id)[0]
    if mma in ("wgmma",) + FED:
        if major != WGMMA_MAJOR:
            return f"{mma} needs compute capability {WGMMA_MAJOR}.0 (sm_90a), got {major}"
        return tma.missing() if mma in FED else None
    return None if major >= MIN_MAJOR else f"needs compute capability {MIN_MAJOR}.0+ (mma.sync int8, cp.async)"


def forms(operand: str = "int8") -> list:
    """The main-loop forms the current device runs on `operand`s, the one expected fastest first."""
    return [f for f in reversed(FORMS) if not missing(f) and (operand == "int8" or f != "sync")]


def shared_limit(mma: str = "sync") -> int:
    """Shared memory a block may take on the current device: SHARED_LIMIT, or less where the device
    offers less (consumer Ada and Ampere cards: 99 KB). The tma form may take all the device offers:
    its deep tiles run one block an SM (configs() also offers depths that let two share one)."""
    offered = _device(cp.cuda.Device().id)[1]
    return offered if mma in FED else min(SHARED_LIMIT, offered)


def layout(bm: int, bn: int, stages: int, out: str, residual: str | None = None, mma: str = "sync") -> dict | None:
    """Shared memory of one configuration, or None where it does not fit: `stages` K slices of X and W
    from offset 0, the outputs staged over them once the product is done, the residual tile in a region
    of its own, loaded with the first slice ("prefetch") where that fits, else after the product. The tma
    form adds a full and an empty mbarrier a slot ("bars") and the slack that aligns the slots."""
    slices, ys, rs = stages * (bm + bn) * ROW_BYTES[mma], _staged(bm, bn, out), _staged(bm, bn, residual)
    extra = 16 * stages + 8 + TMA_ALIGN if mma in FED else 0  # pingpong's order barrier: 8 bytes
    limit = shared_limit(mma) - extra
    if mma == "pingpong":  # each warpgroup stages its own tile beside the ring, which runs on; no residual
        if residual or slices + 2 * ys > limit:
            return None
        return {"bytes": slices + 2 * ys + extra, "ys": slices, "bars": slices + 2 * ys, "prefetch": False}
    if max(slices, ys) + rs <= limit:
        found = {"bytes": max(slices, ys) + rs, "res": max(slices, ys), "ys": 0, "prefetch": bool(residual)}
    elif max(slices, rs + ys) <= limit:
        found = {"bytes": max(slices, rs + ys), "res": 0, "ys": rs, "prefetch": False}
    else:
        return None
    if mma == "tma":
        found["bars"] = found["bytes"]
        found["bytes"] += extra
    return found


def tiles(mma: str) -> tuple:
    """The (BM, BN) tiles of a main-loop form, the ones expected fastest first."""
    return {"wgmma": WGMMA_TILES, "tma": TMA_TILES, "pingpong": PINGPONG_TILES}.get(mma, TILES)


def stage_range(k: int, mma: str = "sync") -> range:
    """Pipeline depths for a product over K, deepest first: as many slots as K has slices, up to the
    form's bound. wgmma holds K whole where it has fewer slices than WGMMA_STAGES[1] (one depth: every
    slice in its own slot), else pipelines it through 3 or more slots (two hold the slices that the
    products in flight read)."""
    if mma in FED:
        slices = -(-k // TMA_BK)
        return range(max(min(slices, TMA_STAGES[1]), TMA_STAGES[0]), TMA_STAGES[0] - 1, -1)
    slices = -(-k // BK)
    if mma == "wgmma":
        if slices < WGMMA_STAGES[1]:
            return range(slices, slices - 1, -1)
        return range(WGMMA_STAGES[1], WGMMA_STAGES[0] - 1, -1)
    return range(min(slices, MAX_STAGES), 0, -1)


def configs(n: int, k: int, out: str, residual: str | None = None, mma: str = "sync") -> list:
    """(BM, BN, stages) worth timing, in TILES' order: the deepest pipeline of stage_range that fits
    shared memory; tiles twice as wide as N are left out. For tma also the deepest that lets two blocks
    share a multiprocessor, so that one block's epilogue overlaps the other's products."""
    found = []
    for bm, bn in tiles(mma):
        if bn > 64 and bn >= 2 * n:
            continue
        bounds = (shared_limit(mma), shared_limit(mma) // 2 - TMA_ALIGN) if mma == "tma" else (shared_limit(mma),)
        for bound in bounds:
            for stages in stage_range(k, mma):
                shared = layout(bm, bn, stages, out, residual, mma)
                if shared and shared["bytes"] <= bound:
                    if (bm, bn, stages) not in found:
                        found.append((bm, bn, stages))
                    break
    return found


def fits(n: int, k: int, out: str, residual: str | None = None, mma: str = "sync") -> str | None:
    """Why the kernel cannot take a product of N outputs over K on the current device, or None."""
    why = missing(mma)
    if why:
        return why
    if out not in _SIZE or (residual and residual not in _SIZE):
        return f"output {out} / residual {residual} not handled (int8, uint8, float16, float32)"
    if k % 16 or any(n * _SIZE[d] % 16 for d in (out, residual) if d):
        return f"needs K a multiple of 16 and rows of whole 16-byte vectors, got N={n}, K={k} ({out}, {residual})"
    if not configs(n, k, out, residual, mma):
        return "no tile fits shared memory"
    return None


# cp.async with zero fill (src-size 0) for rows and K beyond the operands; ldmatrix for the fragments:
# an 8x8 b16 matrix is 8 rows of 16 int8, which is what m16n8k32 takes per register
_ASYNC = r"""
__device__ inline void wb_cp16(unsigned char* dst, const void* src, bool ok) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(s), "l"(src), "r"(ok ? 16 : 0));
}
__device__ inline void wb_cp4(unsigned char* dst, const void* src, bool ok) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" :: "r"(s), "l"(src), "r"(ok ? 4 : 0));
}
__device__ inline void wb_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ inline void wb_ldm4(unsigned* r, const unsigned char* p) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
template <typename T> struct __align__(2 * sizeof(T)) wb_pair { T v[2]; };
"""

# wgmma's shared-memory operands: 64-byte rows (one K slice) in the 64-byte swizzle, the 16-byte unit u
# of row r stored at unit u ^ ((r >> 1) & 3), so that the tensor cores read 8 rows at once free of bank
# conflicts (without a swizzle they read a 16-byte column of 8 rows at a time: 1.5x slower than mma.sync,
# probe_imma.py). The descriptor holds the start address, the distance between 8-row groups (SBO) and
# the mode (2: 64-byte swizzle); the swizzle applies to address bits, so atoms sit on 512-byte boundaries.
WGMMA_SBO, WGMMA_ALIGN = 8 * BK, 512


def _descriptor(name: str, sbo: int, mode: int) -> str:
    """C of a K-major shared-memory matrix descriptor: start address, 8-row groups `sbo` bytes apart,
    swizzle `mode` (1: 128-byte, 2: 64-byte)."""
    return f"""
__device__ inline unsigned long long {name}(unsigned addr) {{
  return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) | ((unsigned long long)({sbo} >> 4) << 32) |
         ({mode}ull << 62);
}}"""


_WGMMA = _descriptor("wb_desc", WGMMA_SBO, 2) + "\n"

# The tma form: slots of 128-byte rows in the 128-byte swizzle (descriptor mode 1, 8-row groups 1024 bytes
# apart), written by cp.async.bulk.tensor (the tensor map's swizzle is the same function of the address
# bits); each slot has a "full" mbarrier (the producer's expected bytes, completed by the copies) and an
# "empty" one (an arrival from each consumer warp once its products of the slot are done).
_TMA = rf"""
struct __align__(64) wb_tmap {{ unsigned long long v[{tma.MAP_BYTES // 8}]; }};""" + _descriptor("wb_desc128", 8 * TMA_BK, 1) + rf"""
__device__ inline void wb_mbar_init(unsigned bar, unsigned count) {{
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count) : "memory");
}}
__device__ inline void wb_mbar_expect(unsigned bar, unsigned bytes) {{
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}}
__device__ inline void wb_mbar_arrive(unsigned bar) {{
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" :: "r"(bar) : "memory");
}}
__device__ inline void wb_mbar_wait(unsigned bar, unsigned parity) {{
  unsigned done = 0;
  while (!done)
    asm volatile("{{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                 " selp.u32 %0, 1, 0, p;\n}}\n" : "=r"(done) : "r"(bar), "r"(parity) : "memory");
}}
__device__ inline void wb_tma(unsigned dst, const wb_tmap* map, int k, int row, unsigned bar) {{
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
               " [%0], [%1, {{%2, %3}}], [%4];\n"
               :: "r"(dst), "l"((unsigned long long)map), "r"(k), "r"(row), "r"(bar) : "memory");
}}
"""
_CONSUMERS_SYNC = 'asm volatile("bar.sync 1, 256;\\n" ::: "memory");  // the consumer warps only'


def _at(mma: str, row: str, k: str) -> str:
    """C offset, within a stage's X or W region, of byte k (of the 64-byte slice) of row `row`."""
    if mma == "wgmma":
        return f"((({row}) * {BK}) + (((({k}) >> 4) ^ ((({row}) >> 1) & 3)) << 4) + (({k}) & 15))"
    return f"(({row}) * {LDS} + ({k}))"


def _wgmma(n: int, i: int) -> str:
    """C issuing one m64nNk32 product (OPERANDS' types) from descriptors da, db into accs[i][j][c]."""
    regs = n // 2
    outs = ", ".join(f'WB_ACC(accs[{i}][{r // 4}][{r % 4}])' for r in range(regs))
    dst = ", ".join(f"%{i}" for i in range(regs))
    return (f'asm volatile("wgmma.mma_async.sync.aligned.m64n{n}k32." WB_MMA_TYPES " {{{dst}}}, %{regs}, '
            f'%{regs + 1}, 1" WB_MMA_SIGNS ";\\n" : {outs} : "l"(da), "l"(db));')


def patches(g, cp_: int) -> dict:
    """What the implicit-GEMM loader needs of a convolution (conv.Geometry) over NHWC int8 input with
    cp_ channels (C padded to a multiple of 4): rows are output pixels, K runs over (r, s, c)."""
    return {"h": g.h, "w": g.w, "c": cp_, "r": g.r, "s": g.s, "p": g.p, "q": g.q, "stride": list(g.stride),
            "dilation": list(g.dilation), "pad": list(g.pad_begin)}


# The thread that loads 16-byte unit u of a slice row: eight consecutive threads take one unit of eight
# rows, so each quarter warp writes 128 distinct bytes of shared memory (no bank conflicts in either
# layout) while the warp still reads whole 64-byte row segments from global memory
_ROW16, _UNIT16 = "(({t} >> 5) * 8 + ({t} & 7))", "(({t} >> 3) & 3)"


def _patch_loader(conv: dict, bm: int, mma: str) -> tuple:
    """(per-thread setup, slice loader) C for X as implicit im2col rows: each output pixel's R x S x C
    patch, read in units of 16 bytes where C allows (a multiple of 16), else 4 (one RGBA-like pixel)."""
    unit = 16 if conv["c"] % 16 == 0 else 4
    per_row = BK // unit                 # units per row of a K slice
    rows_per_pass = THREADS // per_row   # a multiple of 8, so pass j's rows start a whole number of row groups on
    passes = bm // rows_per_pass
    row, u = (_ROW16.format(t="tid"), _UNIT16.format(t="tid")) if unit == 16 else \
        (f"tid / {per_row}", f"tid % {per_row}")
    (sh, sw), (dh, dw), (ph, pw) = conv["stride"], conv["dilation"], conv["pad"]
    pq, q, hw, c = conv["p"] * conv["q"], conv["q"], conv["h"] * conv["w"], conv["c"]
    taps = conv["r"] * conv["s"]
    setup = f"""
  // implicit im2col: this thread loads unit u of rows row + j * {rows_per_pass}; per row the offset of its
  // patch's origin and whether the whole patch lies inside the image (most do: no checks)
  const int wb_row = {row}, wb_u = {u};
  int wb_h0[{passes}], wb_w0[{passes}];
  long long wb_base[{passes}];
  bool wb_inside[{passes}];
#pragma unroll
  for (int j = 0; j < {passes}; ++j) {{
    const int m = m0 + wb_row + j * {rows_per_pass};
    const int img = m / {pq}, pix = m % {pq};
    wb_h0[j] = m < M ? (pix / {q}) * {sh} - {ph} : -(1 << 28);
    wb_w0[j] = (pix % {q}) * {sw} - {pw};
    wb_base[j] = (long long)img * {hw * c} + ((long long)wb_h0[j] * {conv["w"]} + wb_w0[j]) * {c};
    wb_inside[j] = wb_h0[j] >= 0 && wb_h0[j] + {(conv["r"] - 1) * dh} < {conv["h"]} && wb_w0[j] >= 0 &&
                   wb_w0[j] + {(conv["s"] - 1) * dw} < {conv["w"]};
  }}"""
    copy = "wb_cp16" if unit == 16 else "wb_cp4"
    loader = f"""
    {{
      const int k = k0 + wb_u * {unit}, tap = k / {c}, ch = k % {c};
      const int dy = tap / {conv["s"]} * {dh}, dx = tap % {conv["s"]} * {dw};  // the tap's place in the patch
      const bool tap_ok = tap < {taps};
      const int off = (dy * {conv["w"]} + dx) * {c} + ch;
      unsigned char* dst = As + {_at(mma, "wb_row", f"wb_u * {unit}")};
#pragma unroll
      for (int j = 0; j < {passes}; ++j) {{
        const bool ok = tap_ok && (wb_inside[j] || ((unsigned)(wb_h0[j] + dy) < {conv["h"]}u &&
                                                    (unsigned)(wb_w0[j] + dx) < {conv["w"]}u));
        {copy}(dst + j * {rows_per_pass * ROW_BYTES[mma]}, ok ? (const void*)(X + wb_base[j] + off) : (const void*)X, ok);
      }}
    }}"""
    return setup, loader


def _rows_loader(dst: str, src: str, rows: int, first: str, limit: str, mma: str) -> str:
    """C loading one K slice of `rows` K-contiguous rows of `src` (X or W) into `dst`: four 16-byte
    units a row, zeros beyond the operand."""
    row, unit = _ROW16.format(t="i"), _UNIT16.format(t="i")
    return f"""
    for (int i = tid; i < {rows * 4}; i += {THREADS}) {{
      const int row = {row}, u = {unit}, k = k0 + u * 16, r = {first} + row;
      const bool ok = r < {limit} && k < K;
      wb_cp16({dst} + {_at(mma, "row", "u * 16")}, ok ? (const void*)({src} + (size_t)r * K + k) : (const void*){src}, ok);
    }}"""


def _warp_tiles(bm: int, bn: int, mma: str) -> dict:
    """Where a warp's accumulators sit: C placing the warp (wm, wn), its column span wtn, mt row blocks
    of 16 (sync) or 64 (wgmma) rows, and `row`, the C of row block i's first row. A sync warp holds a
    wtm x wtn block of the tile. The two wgmma warpgroups split the tile's rows where it has 128 or more
    (each then issues bm / 128 m64 products a K step), else its columns; a warpgroup's warp w holds rows
    16 w to 16 w + 15 of each m64 block (the accumulator layout of m64nNk32)."""
    if mma == "pingpong":  # a warpgroup a tile
        return {"place": "", "row": "i * 64 + (warp & 3) * 16", "mt": bm // 64, "wtn": bn}
    if mma in ("wgmma", "tma"):
        groups_m = 2 if bm >= 128 else 1
        rows, wtn = bm // groups_m, bn // (2 // groups_m)
        return {"place": f"const int wm = (warp >> 2) % {groups_m}, wn = (warp >> 2) / {groups_m};",
                "row": f"wm * {rows} + i * 64 + (warp & 3) * 16", "mt": rows // 64, "wtn": wtn}
    warps_m = 4 if bm == 128 else 2
    wtm = bm // warps_m
    return {"place": f"const int wm = warp % {warps_m}, wn = warp / {warps_m};", "row": f"wm * {wtm} + i * 16",
            "mt": wtm // 16, "wtn": bn // (THREADS // 32 // warps_m), "wtm": wtm}


def _sync_loop(bm: int, bn: int, stages: int, wtm: int, wtn: int) -> str:
    """The mma.sync main loop: `stages - 1` slices loading while one is multiplied, fragments by ldmatrix."""
    mt, nt = wtm // 16, wtn // 8
    stage_bytes = (bm + bn) * LDS
    return f"""
#pragma unroll
  for (int s = 0; s < {stages - 1}; ++s)
    if (s < tiles) load(s, s * {BK});
    else wb_commit();
  for (int kt = 0; kt < tiles; ++kt) {{
    if (kt + {stages - 1} < tiles) load((kt + {stages - 1}) % {stages}, (kt + {stages - 1}) * {BK});
    else wb_commit();  // an empty group keeps the count the wait below relies on
    asm volatile("cp.async.wait_group {stages - 1};\\n" ::);
    __syncthreads();
    const unsigned char* As = smem + (kt % {stages}) * {stage_bytes};
    const unsigned char* Bs = As + {bm * LDS};
#pragma unroll
    for (int kk = 0; kk < {BK}; kk += 32) {{
      unsigned a[{mt}][4], b[{nt}][2];
#pragma unroll
      for (int i = 0; i < {mt}; ++i)
        wb_ldm4(a[i], As + (wm * {wtm} + i * 16 + (lane & 15)) * {LDS} + kk + (lane >> 4) * 16);
#pragma unroll
      for (int j = 0; j < {nt}; j += 2) {{
        unsigned r[4];
        wb_ldm4(r, Bs + (wn * {wtn} + j * 8 + (lane & 7) + (lane >> 4) * 8) * {LDS} + kk + ((lane >> 3) & 1) * 16);
        b[j][0] = r[0]; b[j][1] = r[1]; b[j + 1][0] = r[2]; b[j + 1][1] = r[3];
      }}
      // not volatile: the products only touch registers, so they may move past the next fragment loads
#pragma unroll
      for (int i = 0; i < {mt}; ++i)
#pragma unroll
        for (int j = 0; j < {nt}; ++j)
          asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {{%0,%1,%2,%3}}, {{%4,%5,%6,%7}}, "
                       "{{%8,%9}}, {{%0,%1,%2,%3}};\\n"
                       : "+r"(accs[i][j][0]), "+r"(accs[i][j][1]), "+r"(accs[i][j][2]), "+r"(accs[i][j][3])
                       : "r"(a[i][0]), "r"(a[i][1]), "r"(a[i][2]), "r"(a[i][3]), "r"(b[j][0]), "r"(b[j][1]));
    }}
    __syncthreads();
  }}"""


def _wgmma_loop(bm: int, bn: int, stages: int, mt: int, wtn: int, whole: bool) -> str:
    """The wgmma main loop. `whole`: K's slices fit the `stages` slots (the shallow products of ResNet's
    1x1 convolutions): they are all requested at once and no slot is reused. Else each warpgroup's
    products of slice kt stay in flight while the slot of slice kt - 2 (both warpgroups done with it:
    they waited past it before this iteration's barrier) takes slice kt + stages - 2, which needs 3
    slots or more. One loop a kernel: both in one took up to 40 more registers. cp.async writes through
    the generic proxy and wgmma reads through the async one, hence the proxy fence before each barrier."""
    ahead = stages - 2
    stage_bytes = (bm + bn) * BK
    products = "".join(f"""      {{
        const unsigned long long da = wb_desc(base + a_off + {i * 64 * BK} + kk);
        {_wgmma(wtn, i)}
      }}
""" for i in range(mt))
    step = f"""
    const unsigned base = sbase + (kt % {stages}) * {stage_bytes};
    asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < {BK}; kk += 32) {{  // a K step inside a swizzled row: the start address moves
      const unsigned long long db = wb_desc(base + b_off + kk);
{products}    }}
    asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory");"""
    landed = "".join(f"""
      case {n}: asm volatile("cp.async.wait_group {n};\\n" ::: "memory"); break;""" for n in range(stages))
    if whole:
        loop = f"""
  for (int s = 0; s < tiles; ++s) load(s, s * {BK});
  for (int kt = 0; kt < tiles; ++kt) {{
    switch (tiles - 1 - kt) {{  // slice kt landed: as many groups as slices after it may still fly{landed}
    }}
    asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");
    __syncthreads();{step}
  }}"""
    elif stages < WGMMA_STAGES[0]:
        raise ValueError(f"the pipelined wgmma loop needs at least {WGMMA_STAGES[0]} slots, got {stages}")
    else:
        loop = f"""
#pragma unroll
  for (int s = 0; s < {ahead}; ++s)
    if (s < tiles) load(s, s * {BK});
    else wb_commit();
  for (int kt = 0; kt < tiles; ++kt) {{
    asm volatile("cp.async.wait_group {ahead - 1};\\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");
    __syncthreads();
    if (kt + {ahead} < tiles) load((kt + {ahead}) % {stages}, (kt + {ahead}) * {BK});
    else wb_commit();  // an empty group keeps the count the wait above relies on{step}
    asm volatile("wgmma.wait_group.sync.aligned 1;\\n" ::: "memory");
  }}"""
    return f"""
  const unsigned sbase = (unsigned)__cvta_generic_to_shared(smem);
  const unsigned a_off = wm * {mt * 64 * BK}, b_off = {bm * BK} + wn * {wtn * BK};{loop}
  asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
  __syncthreads();"""


def _fed_barriers(stages: int, readers: int, order: bool = False) -> str:
    """C initialising the fed forms' mbarriers: a full one a slot (the producer's expected bytes), an
    empty one a slot (`readers` warp arrivals) and, for pingpong, the warpgroups' order barrier."""
    ordered = "\n    wb_mbar_init(order, 4);" if order else ""
    return f"""
  if (tid == 0) {{
    for (int s = 0; s < {stages}; ++s) {{
      wb_mbar_init(full + 8 * s, 1);
      wb_mbar_init(empty + 8 * s, {readers});
    }}{ordered}
    asm volatile("fence.mbarrier_init.release.cluster;\\n" ::: "memory");
  }}
  __syncthreads();"""


def _fed_request(slice_: str, stages: int, bm: int, bn: int, pad: str) -> str:
    """C by which the producer requests the block's slice number `slice_` (K slice kt of the tile at
    (m0, n0)) into its slot, once the slice `stages` before it there has been read."""
    stage_bytes = (bm + bn) * TMA_BK
    return f"""{pad}const int s = {slice_} % {stages};
{pad}if ({slice_} >= {stages}) wb_mbar_wait(empty + 8 * s, (({slice_} / {stages}) - 1) & 1);
{pad}const unsigned dst = sbase + s * {stage_bytes};
{pad}wb_mbar_expect(full + 8 * s, {stage_bytes});  // out-of-bounds box rows arrive as zeros, counted
{pad}wb_tma(dst, &tx, kt * {TMA_BK}, m0, full + 8 * s);
{pad}wb_tma(dst + {bm * TMA_BK}, &tw, kt * {TMA_BK}, n0, full + 8 * s);"""


def _fed_products(slice_: str, stages: int, bm: int, bn: int, mt: int, wtn: int, a_off: str, b_off: str,
                  pad: str) -> str:
    """C by which a warpgroup waits for the block's slice number `slice_` (K slice kt), issues its
    products and, with them in flight, marks the slice before it read."""
    stage_bytes = (bm + bn) * TMA_BK
    products = "".join(f"""{pad}  {{
{pad}    const unsigned long long da = wb_desc128(base + {a_off}{i * 64 * TMA_BK} + kk);
{pad}    {_wgmma(wtn, i)}
{pad}  }}
""" for i in range(mt))
    return f"""{pad}const int g = {slice_}, s = g % {stages};
{pad}wb_mbar_wait(full + 8 * s, (g / {stages}) & 1);
{pad}const unsigned base = sbase + s * {stage_bytes};
{pad}asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory");
#pragma unroll
{pad}for (int kk = 0; kk < {TMA_BK}; kk += 32) {{  // a K step inside a swizzled row: the start address moves
{pad}  const unsigned long long db = wb_desc128(base + {b_off} + kk);
{products}{pad}}}
{pad}asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory");
{pad}asm volatile("wgmma.wait_group.sync.aligned 1;\\n" ::: "memory");
{pad}if (kt > 0 && lane == 0) wb_mbar_arrive(empty + 8 * ((g - 1) % {stages}));  // the slice before is read"""


def _pingpong(name: str, params: list, smem_decl: str, shared: dict, stages: int, e: dict) -> str:
    """The pingpong kernel: persistent blocks, each taking tiles blockIdx.x, + gridDim.x, ...; the producer
    warp streams every tile's K slices through one ring of slots, and the two warpgroups take the
    block's tiles in turn, each a whole tile, so that one's epilogue runs while the other's products do
    (the non-persistent forms leave the tensor cores idle during it: FFN1's GELU epilogue took 0.033 of
    its 0.081 ms). A slot's empty barrier counts the four warps of the warpgroup that read it. The
    warpgroups' main loops take turns ("order": turn t's slices have all landed before turn t + 1 waits
    for its own): a slot's full barrier is then never waited on two rounds ahead, which its phase parity
    could not tell from the round before."""
    bm, bn, mt = e["bm"], e["bn"], e["mt"]
    ys_bytes = _staged(bm, bn, e["out"])
    own_barrier = 'asm volatile("bar.sync %0, 128;\\n" :: "r"(1 + wg) : "memory");'  # the warpgroup's alone
    epilogue = _epilogue(dict(e, ltid="(tid & 127)", threads=128, sync=own_barrier))
    return f"""
extern "C" __global__ void __launch_bounds__({TMA_THREADS}) {name}({", ".join(params)}) {{
  {smem_decl}
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int n_tiles = (N + {bn - 1}) / {bn}, all_tiles = ((M + {bm - 1}) / {bm}) * n_tiles;
  const int tiles = (K + {TMA_BK - 1}) / {TMA_BK};  // K slices a tile
  const unsigned full = sbase + {shared["bars"]}, empty = full + {8 * stages}, order = empty + {8 * stages};{_fed_barriers(stages, 4, True)}
  if (warp == {THREADS // 32}) {{
    if (lane == 0) {{
      int g = 0;  // the block's slice count: slot g % {stages}, round g / {stages}
      for (int tile = blockIdx.x; tile < all_tiles; tile += gridDim.x) {{
        const int m0 = (tile / n_tiles) * {bm}, n0 = (tile % n_tiles) * {bn};
        for (int kt = 0; kt < tiles; ++kt, ++g) {{
{_fed_request("g", stages, bm, bn, "          ")}
        }}
      }}
    }}
    return;
  }}
  const int wg = warp >> 2, wn = 0;  // warpgroup wg takes the block's tiles wg, wg + 2, ...
  {e["y_type"]}* Ys = ({e["y_type"]}*)(smem + {shared["ys"]} + wg * {ys_bytes});
  int turn = wg;  // the block's tile count, which places this tile's slices in the ring
  for (int tile = blockIdx.x + wg * gridDim.x; tile < all_tiles; tile += 2 * gridDim.x, turn += 2) {{
    const int m0 = (tile / n_tiles) * {bm}, n0 = (tile % n_tiles) * {bn};
    wb_acc accs[{mt}][{e["nt"]}][4];
#pragma unroll
    for (int i = 0; i < {mt}; ++i)
#pragma unroll
      for (int jj = 0; jj < {e["nt"]}; ++jj)
#pragma unroll
        for (int c = 0; c < 4; ++c) accs[i][jj][c] = 0;
    if (turn > 0) wb_mbar_wait(order, (turn - 1) & 1);  // the other warpgroup's turn before has all its slices
    for (int kt = 0; kt < tiles; ++kt) {{
{_fed_products("turn * tiles + kt", stages, bm, bn, mt, bn, "", bm * TMA_BK, "      ")}
    }}
    if (lane == 0) wb_mbar_arrive(order);  // this turn's slices have landed: the next turn may wait for its own
    asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
    if (lane == 0) wb_mbar_arrive(empty + 8 * ((turn * tiles + tiles - 1) % {stages}));  // the ring goes on
{epilogue}
    asm volatile("bar.sync %0, 128;\\n" :: "r"(1 + wg) : "memory");  // Ys is read out before the next tile
  }}
}}
"""


def _tma_loop(bm: int, bn: int, stages: int, mt: int, wtn: int, bars: int, consumers_start: str) -> str:
    """The tma main loop: warp 8 is the producer, one of its threads requesting each slice (X's and W's
    boxes) once its slot is empty; warps 0-7 (two warpgroups) wait for a slot to be full, issue its
    products and, once the next slice's products are in flight, mark it empty. The producer needs no
    registers to speak of and issues two instructions a slice where cp.async took four a thread.
    `consumers_start`: C the consumers run first (the residual's prefetch)."""
    return f"""
  const unsigned full = sbase + {bars}, empty = full + {8 * stages};{_fed_barriers(stages, THREADS // 32)}
  if (warp == {THREADS // 32}) {{
    if (lane == 0)
      for (int kt = 0; kt < tiles; ++kt) {{
{_fed_request("kt", stages, bm, bn, "        ")}
      }}
    return;
  }}{consumers_start}
  const unsigned a_off = wm * {mt * 64 * TMA_BK}, b_off = {bm * TMA_BK} + wn * {wtn * TMA_BK};
  for (int kt = 0; kt < tiles; ++kt) {{
{_fed_products("kt", stages, bm, bn, mt, wtn, "a_off + ", "b_off", "    ")}
  }}
  asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
  {_CONSUMERS_SYNC}"""


def holds_whole(k: int, stages: int, mma: str) -> bool:
    """Whether a product over K has each K slice in a slot of its own (wgmma's loop without reuse)."""
    return mma == "wgmma" and -(-k // BK) <= stages


def _epilogue(e: dict) -> str:
    """C from the accumulators to Y for one tile at (m0, n0): values staged in Ys (`sync` after), then
    stored in 16-byte vectors by e["threads"] threads numbered e["ltid"]."""
    nt, mt, wtn, size, ldy, bm, bn = e["nt"], e["mt"], e["wtn"], e["size"], e["ldy"], e["bm"], e["bn"]
    return f"""  const int g = lane >> 2, t = lane & 3;
  // column pair by column pair: the pair's vectors are loaded (8 bytes each: N is even) where they are
  // used; kept for the whole tile they took a register per column, 64 at a 128-wide warpgroup tile
#pragma unroll
  for (int j = 0; j < {nt}; ++j) {{
    const int col = wn * {wtn} + j * 8 + t * 2;
    const int n = min(n0 + col, N - 2);
    {e['col_loads']}
#pragma unroll
    for (int i = 0; i < {mt}; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {{
        const int row = {e['row']} + g + h * 8;  // rows past M hold zeros: staged, never stored
        {e['res_read']}
        wb_pair<{e['y_type']}> yp;
#pragma unroll
        for (int c = 0; c < 2; ++c) {{
          const wb_acc acc = accs[i][j][h * 2 + c];
          {e['col_picks']}
          {e['res_pick']}
          {e['y_type']} y;
          {e['body']}
          yp.v[c] = y;
        }}
        *(wb_pair<{e['y_type']}>*)&Ys[row * {ldy} + col] = yp;
      }}
    }}
  {e['sync']}
  for (int i = {e['ltid']}; i < {bm * bn * size // 16}; i += {e['threads']}) {{
    const int row = i / {bn * size // 16}, c = i % {bn * size // 16};
    const int m = m0 + row, n = n0 + c * {16 // size};
    if (m < M && n < N)
      *(int4*)((unsigned char*)Y + ((size_t)m * N + n) * {size}) = *(const int4*)((const unsigned char*)Ys + row * {ldy * size} + c * 16);
  }}
"""


def source(lines: list, columns: tuple, residual: str | None, out: str, bm: int, bn: int, stages: int,
           conv: dict | None = None, mma: str = "sync", whole: bool = False, operand: str = "int8") -> tuple:
    """(kernel name, CUDA source) for one epilogue and configuration. `lines`: C statements from acc
    (int for int8 operands, float for e4m3), the per-column float vectors named in `columns` and res (the
    residual's element) to y. conv (patches()): X is an NHWC int8 image and its rows the patches of a
    convolution. mma: FORMS; whole: K has at most `stages` slices (holds_whole()), which the kernel then
    assumes; operand: OPERANDS."""
    shared = layout(bm, bn, stages, out, residual, mma)
    if shared is None:
        raise ValueError(f"tile {bm}x{bn} with {stages} stages does not fit {shared_limit(mma)} bytes of shared memory")
    fed = mma in FED
    if fed and conv:
        raise ValueError(f"the {mma} form reads plain rows: a convolution's patches take the wgmma or sync form")
    if operand not in OPERANDS or (operand != "int8" and mma == "sync"):
        raise ValueError(f"operands {operand!r} in the {mma} form: the sync form takes int8, the wgmma forms "
                         f"{sorted(OPERANDS)}")
    warps = _warp_tiles(bm, bn, mma)
    mt, wtn = warps["mt"], warps["wtn"]
    nt = wtn // 8
    size = _SIZE[out]
    ldy = bn + 16 // size  # staged output row, in elements (16 bytes of padding)
    key = json.dumps([lines, columns, residual, out, bm, bn, stages, conv, mma, whole, operand])
    name = "wb_imma_" + hashlib.sha1(key.encode()).hexdigest()[:16]
    y_type = _C[out]
    params = ["const __grid_constant__ wb_tmap tx", "const __grid_constant__ wb_tmap tw"] if fed else \
        ["const signed char* __restrict__ X", "const signed char* __restrict__ W"]
    params += [f"const float* __restrict__ {c}_v" for c in columns]
    params += [f"const {_C[residual]}* __restrict__ R"] if residual else []
    params += [f"{_C[out]}* __restrict__ Y", "int M", "int N", "int K"]
    rsize = _SIZE[residual] if residual else 1
    ldr = bn + 16 // rsize
    # the residual tile goes to shared memory in whole 16-byte vectors (read per element it cost more than
    # the product): with the first K slice (cp.async, same group) where it fits, else after the product
    load_residual = "" if not residual else f"""
  for (int i = tid; i < {bm * bn * rsize // 16}; i += {THREADS}) {{
    const int row = i / {bn * rsize // 16}, c = i % {bn * rsize // 16};
    const int m = m0 + row, n = n0 + c * {16 // rsize};
    const bool ok = m < M && n < N;
    wb_cp16(smem + {shared["res"]} + row * {ldr * rsize} + c * 16,
            ok ? (const void*)((const unsigned char*)R + ((size_t)m * N + n) * {rsize}) : (const void*)R, ok);
  }}"""
    sync = _CONSUMERS_SYNC if fed else "__syncthreads();"
    # after the product: the residual's load where it was not prefetched, then the wait for it (the fed
    # forms prefetch through cp.async groups of their own, so they wait here either way)
    late = "" if shared["prefetch"] else load_residual
    after = "" if shared["prefetch"] and not fed else late + f"""
  wb_commit();
  asm volatile("cp.async.wait_group 0;\\n" ::);
  {sync}"""
    res_read = f"const wb_pair<{_C[residual]}> rp = *(const wb_pair<{_C[residual]}>*)&Rs[row * {ldr} + col];" \
        if residual else ""
    res_pick = f"const {_C[residual]} res = rp.v[c];" if residual else ""
    col_loads = " ".join(f"const float2 {c}s = *(const float2*)({c}_v + n);" for c in columns)
    col_picks = " ".join(f"const float {c} = c ? {c}s.y : {c}s.x;" for c in columns)
    body = " ".join(lines)
    row_bytes = ROW_BYTES[mma]
    stage_bytes = (bm + bn) * row_bytes
    setup, x_loader = _patch_loader(conv, bm, mma) if conv else ("", _rows_loader("As", "X", bm, "m0", "M", mma))
    prefetch = load_residual if shared["prefetch"] else ""
    if fed:
        main_loop = _tma_loop(bm, bn, stages, mt, wtn, shared["bars"], prefetch + ("\n  wb_commit();" if prefetch else ""))
    elif mma == "wgmma":
        main_loop = _wgmma_loop(bm, bn, stages, mt, wtn, whole)
    else:
        main_loop = _sync_loop(bm, bn, stages, warps["wtm"], wtn)
    # tma: the slots start at the first 1024-byte boundary of the block's dynamic shared memory
    smem_decl = f"""extern __shared__ __align__({TMA_ALIGN}) unsigned char wb_smem[];  // {shared["bytes"]} bytes
  const unsigned sbase = ((unsigned)__cvta_generic_to_shared(wb_smem) + {TMA_ALIGN - 1}) & ~{TMA_ALIGN - 1}u;
  unsigned char* smem = wb_smem + (sbase - (unsigned)__cvta_generic_to_shared(wb_smem));""" if fed else \
        f"extern __shared__ __align__({WGMMA_ALIGN}) unsigned char smem[];  // {shared['bytes']} bytes"
    epi = dict(out=out, nt=nt, mt=mt, wtn=wtn, size=size, ldy=ldy, bm=bm, bn=bn, row=warps["row"], y_type=y_type, body=body,
               col_loads=col_loads, col_picks=col_picks, res_read=res_read, res_pick=res_pick, sync=sync, ltid="tid",
               threads=THREADS)
    if mma == "pingpong":
        return name, _PREAMBLE + EXACT + HALF_TYPE + OPERANDS[operand] + _ASYNC + _TMA + \
            _pingpong(name, params, smem_decl, shared, stages, epi)
    extra = {"wgmma": _WGMMA, "tma": _TMA}.get(mma, "")
    depth = TMA_BK if fed else BK
    loader = "" if fed else f"""
  // stage s holds a 64-byte K slice: X rows at smem + s * {stage_bytes}, W rows {bm * row_bytes} bytes on
  auto load = [&](int s, int k0) {{
    unsigned char* As = smem + s * {stage_bytes};
    unsigned char* Bs = As + {bm * row_bytes};{x_loader}{_rows_loader("Bs", "W", bn, "n0", "N", mma)}
    wb_commit();
  }};"""
    code = _PREAMBLE + EXACT + HALF_TYPE + OPERANDS[operand] + _ASYNC + extra + f"""
extern "C" __global__ void __launch_bounds__({TMA_THREADS if fed else THREADS}) {name}({", ".join(params)}) {{
  {smem_decl}
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  {warps["place"]}
  // blocks of one row band are launched side by side, so X's rows are read from DRAM once, then from L2
  const int n_tiles = (N + {bn - 1}) / {bn};
  const int m0 = (int)(blockIdx.x / n_tiles) * {bm}, n0 = (int)(blockIdx.x % n_tiles) * {bn};
  wb_acc accs[{mt}][{nt}][4];
#pragma unroll
  for (int i = 0; i < {mt}; ++i)
#pragma unroll
    for (int j = 0; j < {nt}; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) accs[i][j][c] = 0;
  const int tiles = (K + {depth - 1}) / {depth};{setup}{loader}
{"" if fed else prefetch}{main_loop}
  {_C[out]}* Ys = ({_C[out]}*)(smem + {shared["ys"]});
  {f"const {_C[residual]}* Rs = (const {_C[residual]}*)(smem + {shared['res']});" if residual else ""}
{after}
{_epilogue(epi)}
}}
"""
    return name, code


class ImmaKernel:
    """One compiled kernel: call with (xq, wq, *column vectors, residual or None, y (M, N)); xq is (M, K),
    or the NHWC image whose patches are the rows."""

    def __init__(self, lines: list, columns: tuple, residual: str | None, out: str, bm: int, bn: int,
                 stages: int, conv: dict | None = None, mma: str = "sync", whole: bool = False,
                 operand: str = "int8"):
        name, code = source(lines, tuple(columns), residual, out, bm, bn, stages, conv, mma, whole, operand)
        self.shared = layout(bm, bn, stages, out, residual, mma)["bytes"]
        k = _KERNELS.get(name)
        if k is None:
            k = _KERNELS[name] = ArchKernel(code, name, "sm_90a") if mma != "sync" else cp.RawKernel(code, name)
            if self.shared > PORTABLE_SHARED:
                k.max_dynamic_shared_size_bytes = self.shared
        self.kernel, self.bm, self.bn, self.columns = k, bm, bn, len(columns)
        self.stages, self.whole, self.fed, self.persistent = stages, whole, mma in FED, mma == "pingpong"

    def registers(self) -> tuple:
        """(registers per thread, local memory bytes per thread) of the compiled kernel."""
        return self.kernel.attributes.get("num_regs"), self.kernel.attributes.get("local_size_bytes")

    def __call__(self, xq, wq, *rest) -> None:
        *vectors, residual, y = rest
        if len(vectors) != self.columns:
            raise ValueError(f"the kernel takes {self.columns} column vector(s), got {len(vectors)}")
        (m, n), k = y.shape, wq.shape[1]
        if self.whole and k > self.stages * BK:
            raise ValueError(f"the kernel holds K whole in {self.stages} slot(s) (K <= {self.stages * BK}), got {k}")
        operands = [xq, wq] if not self.fed else [tma.tensor_map(xq, self.bm), tma.tensor_map(wq, self.bn)]
        args = operands + [*vectors] + ([residual] if residual is not None else []) + \
            [y, np.int32(m), np.int32(n), np.int32(k)]
        threads = TMA_THREADS if self.fed else THREADS
        blocks = -(-m // self.bm) * -(-n // self.bn)
        if self.persistent:  # as many blocks as run at once; each walks its tiles
            blocks = min(blocks, self.kernel.resident_blocks(threads, self.shared))
        self.kernel((blocks,), (threads,), tuple(args), shared_mem=self.shared)
