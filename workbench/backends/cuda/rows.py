"""Row-wise kernels generated from recipes: Softmax and LayerNormalization over the last axis.

One thread block per row; statistics in float32 with warp shuffles; fp16 is read and written as
raw 16-bit words converted with PTX `cvt`, so no CUDA header is needed. The recipe (op, dtypes,
rounding) fully determines the source, which CuPy compiles once per architecture and caches on disk.

LayerNorm over fp16 rows of up to 2048 values (a multiple of 8) also has a "warp" form: a warp per row
holds it in registers, read once in 16-byte vectors (the block form reads it three times, two bytes at
a time, and synchronises its block for each statistic). BERT-base b64 (8192 x 768 + residual, H100):
0.032 ms a norm in the block form, where the bytes take 0.013.
"""
from __future__ import annotations

import json

import numpy as np

from .device import cp
from .tactics import Kernel, ops, tactic

_COMMON = r"""
#define WB_NEG_INF __uint_as_float(0xff800000u)
__device__ __forceinline__ float wb_ld(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float wb_ld(const unsigned short* p, long long i) {
  float r; unsigned short h = p[i]; asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h)); return r; }
__device__ __forceinline__ void wb_st(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void wb_st(unsigned short* p, long long i, float v) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v)); p[i] = h; }
__device__ __forceinline__ float wb_half(float x) {
  unsigned short h; float r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x)); asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h)); return r; }
__device__ __forceinline__ float wb_bf16(float x) {
  unsigned int b = __float_as_uint(x);
  if ((b & 0x7f800000u) == 0x7f800000u) return x;
  return __uint_as_float((b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u); }
__device__ __forceinline__ float wb_in(float x) { return ROUND_IN(x); }
__device__ __forceinline__ float wb_out(float x) { return ROUND_OUT(x); }
template <bool MAX> __device__ float wb_block(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = MAX ? fmaxf(v, w) : v + w;
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < warps ? shared[threadIdx.x] : (MAX ? WB_NEG_INF : 0.0f);
  if (warp == 0) {
    for (int o = 16; o > 0; o >>= 1) {
      float w = __shfl_xor_sync(0xffffffffu, v, o);
      v = MAX ? fmaxf(v, w) : v + w;
    }
    if (lane == 0) shared[32] = v;
  }
  __syncthreads();
  return shared[32];
}
"""

_SOFTMAX = r"""
extern "C" __global__ void wb_softmax(const IN_T* x, OUT_T* y, long long rows, int cols) {
  __shared__ float shared[33];
  long long base = (long long)blockIdx.x * cols;
  float m = WB_NEG_INF;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, wb_in(wb_ld(x, base + i)));
  m = wb_block<true>(m, shared);
  float s = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) s += expf(wb_in(wb_ld(x, base + i)) - m);
  s = wb_block<false>(s, shared);
  float inv = 1.0f / s;
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    wb_st(y, base + i, wb_out(expf(wb_in(wb_ld(x, base + i)) - m) * inv));
}
"""

_LAYERNORM = r"""
// the row's value at i: x, plus the residual r when the norm has one (FusedLayerNorm)
#define WB_X(i) (HAS_R ? wb_in(wb_ld(x, base + (i))) + wb_in(wb_ld(r, base + (i))) : wb_in(wb_ld(x, base + (i))))
extern "C" __global__ void wb_layernorm(const IN_T* x, const R_T* r, const W_T* w, const B_T* b, OUT_T* y,
                                        long long rows, int cols, float eps, int has_b) {
  __shared__ float shared[33];
  long long base = (long long)blockIdx.x * cols;
  float s = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) s += WB_X(i);
  float mean = wb_block<false>(s, shared) / cols;
  float q = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) { float d = WB_X(i) - mean; q += d * d; }
  float rstd = rsqrtf(wb_block<false>(q, shared) / cols + eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = (WB_X(i) - mean) * rstd * wb_in(wb_ld(w, i));
    if (has_b) v += wb_in(wb_ld(b, i));
    wb_st(y, base + i, wb_out(v));
  }
}
"""

# One warp a row, eight rows a block: each lane holds CHUNKS vectors of 8 fp16 values (x + residual in
# float32), so the row is read once; mean, then the variance about it, from the registers (two passes,
# as the block form computes them).
_LAYERNORM_WARP = r"""
__device__ __forceinline__ float wb_lo(unsigned u) {
  float f; unsigned short h = (unsigned short)(u & 0xffffu); asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ float wb_hi(unsigned u) {
  float f; unsigned short h = (unsigned short)(u >> 16); asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned wb_pack(float lo, float hi) {
  unsigned short a, b;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(a) : "f"(lo)); asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(hi));
  return (unsigned)a | ((unsigned)b << 16); }
__device__ __forceinline__ float wb_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v; }
extern "C" __global__ void __launch_bounds__(32 * ROWS) wb_layernorm_warp(const uint4* x, const uint4* r,
    const W_T* w, const B_T* b, uint4* y, long long rows, float eps, int has_b) {
  const long long row = (long long)blockIdx.x * ROWS + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const long long base = row * VECS;
  float v[CHUNKS][8];
  float s = 0.0f;
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    const int j = c * 32 + lane;
    if (j < VECS) {
      const uint4 a = x[base + j];
      const unsigned u[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) { v[c][2 * e] = wb_lo(u[e]); v[c][2 * e + 1] = wb_hi(u[e]); }
      if (HAS_R) {
        const uint4 q = r[base + j];
        const unsigned t[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int e = 0; e < 4; ++e) { v[c][2 * e] += wb_lo(t[e]); v[c][2 * e + 1] += wb_hi(t[e]); }
      }
#pragma unroll
      for (int e = 0; e < 8; ++e) s += v[c][e];
    }
  }
  const float mean = wb_warp_sum(s) / (VECS * 8);
  float q = 0.0f;
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c)
    if (c * 32 + lane < VECS)
#pragma unroll
      for (int e = 0; e < 8; ++e) { const float d = v[c][e] - mean; q += d * d; }
  const float rstd = rsqrtf(wb_warp_sum(q) / (VECS * 8) + eps);
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    const int j = c * 32 + lane;
    if (j < VECS) {
      float o[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        o[e] = (v[c][e] - mean) * rstd * wb_in(wb_ld(w, j * 8 + e));
        if (has_b) o[e] += wb_in(wb_ld(b, j * 8 + e));
      }
      y[base + j] = make_uint4(wb_pack(o[0], o[1]), wb_pack(o[2], o[3]), wb_pack(o[4], o[5]), wb_pack(o[6], o[7]));
    }
  }
}
"""
_BODIES = {"softmax": ("wb_softmax", _SOFTMAX), "layernorm": ("wb_layernorm", _LAYERNORM),
           "layernorm-warp": ("wb_layernorm_warp", _LAYERNORM_WARP)}  # recipe op -> (kernel name, source)
WARP_ROWS = 8            # rows a block of the warp form
WARP_MAX_COLS = 2048     # 64 values a lane in registers

_C = {"float16": "unsigned short", "float32": "float", "bfloat16": "float"}
_ROUND = {None: "x", "fp16": "wb_half(x)", "bf16": "wb_bf16(x)"}
_MODULES: dict = {}


def source(recipe: dict) -> str:
    """CUDA C for a row recipe: {"op": "softmax"|"layernorm", "in", "w", "b", "out", "round"}."""
    rnd = recipe.get("round")
    defs = [f"#define IN_T {_C[recipe['in']]}", f"#define OUT_T {_C[recipe['out']]}",
            f"#define W_T {_C[recipe.get('w', 'float32')]}", f"#define B_T {_C[recipe.get('b', 'float32')]}",
            f"#define R_T {_C[recipe.get('r') or recipe['in']]}", f"#define HAS_R {1 if recipe.get('r') else 0}",
            # float32 inputs are rounded to the layer's precision as they are read, as the CPU does
            f"#define ROUND_IN(x) {_ROUND[rnd]}",  # rounding a value already in fp16 changes nothing
            f"#define ROUND_OUT(x) {'wb_bf16(x)' if recipe['out'] == 'bfloat16' else 'x'}"]
    if recipe.get("cols"):  # the warp form, for this row length
        vecs = recipe["cols"] // 8
        defs += [f"#define VECS {vecs}", f"#define CHUNKS {-(-vecs // 32)}", f"#define ROWS {WARP_ROWS}"]
    return "\n".join(defs) + _COMMON + _BODIES[recipe["op"]][1]


def kernel_for(recipe: dict):
    key = json.dumps(recipe, sort_keys=True)
    k = _MODULES.get(key)
    if k is None:
        k = cp.RawKernel(source(recipe), _BODIES[recipe["op"]][0])
        _MODULES[key] = k
    return k


def warp_form_fits(site) -> bool:
    """Whether the warp form takes this LayerNorm: fp16 rows (and residual) of 8 to 2048 values, 8 at a time."""
    cols = site.shape(0)[-1]
    has_r = site.op == "FusedLayerNorm" and site.present(3)
    return site.dtype(0) == "float16" and site.outputs[0] == "float16" and cols % 8 == 0 and \
        0 < cols <= WARP_MAX_COLS and (not has_r or site.dtype(3) == "float16")


def threads_for(cols: int) -> int:
    t = 32
    while t < cols and t < 256:
        t *= 2
    return t


def _rows_of(shape) -> tuple:
    cols = int(shape[-1]) if shape else 1
    return int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1, cols


def _out_dtype(name: str):
    return np.float32 if name in ("float32", "bfloat16") else np.float16


def _check_common(site, n_needed: int):
    if not site.present(0) or not site.shape(0):
        return "scalar input"
    if site.dtype(0) not in ("float16", "float32") or site.outputs[0] not in ("float16", "float32", "bfloat16"):
        return "dtype not handled"
    if any(i and i[2] != "device" for i in site.inputs):
        return "an input lives on the host"
    if any(o for o in site.outputs[n_needed:]):
        return "extra outputs requested"
    return None


@tactic("rows", ops=ops("Softmax"), rank=20)
class Softmax:
    """Softmax over the last axis, one block per row."""

    @staticmethod
    def check(site):
        why = _check_common(site, 1)
        if why:
            return why
        rank = len(site.shape(0))
        axis = site.attrs.get("axis", -1)
        axis = axis + rank if axis is not None and axis < 0 else axis
        return None if axis == rank - 1 else "softmax axis is not the last"

    @staticmethod
    def prepare(site, params, dev):
        recipe = {"op": "softmax", "in": site.dtype(0), "out": site.outputs[0], "round": _round(site)}
        k = kernel_for(recipe)
        rows, cols = _rows_of(site.shape(0))
        threads = threads_for(cols)

        def run(args):
            x = cp.ascontiguousarray(args[0])
            y = cp.empty(x.shape, _out_dtype(site.outputs[0]))
            if rows:
                k((rows,), (threads,), (x, y, np.int64(rows), np.int32(cols)))
            return [y]

        return Kernel(run, label="rows")


@tactic("rows-ln", ops=ops("LayerNormalization") | ops("FusedLayerNorm", domain="workbench"), rank=20)
class LayerNorm:
    """LayerNormalization over the last axis (scale and bias of the row's length), one block per row;
    FusedLayerNorm adds its residual as the row is read."""

    @staticmethod
    def check(site):
        why = _check_common(site, 1)
        if why:
            return why
        if site.op == "FusedLayerNorm" and site.present(3) and \
                (site.shape(3) != site.shape(0) or site.dtype(3) not in ("float16", "float32")):
            return "the residual must be a float16/float32 tensor of X's shape"
        rank = len(site.shape(0))
        axis = site.attrs.get("axis", -1)
        axis = axis + rank if axis < 0 else axis
        if axis != rank - 1:
            return "normalizes over more than the last axis"
        cols = site.shape(0)[-1]
        for i in (1, 2):
            if site.present(i) and (int(np.prod(site.shape(i))) != cols or site.dtype(i) not in _C):
                return "scale/bias do not match the row"
        return None

    @staticmethod
    def candidates(site, level):
        return [{"form": "warp"}, {"form": "block"}] if warp_form_fits(site) else [{"form": "block"}]

    @staticmethod
    def prepare(site, params, dev):
        has_b, has_r = site.present(2), site.op == "FusedLayerNorm" and site.present(3)
        warp = params.get("form", "block") == "warp"
        if warp and not warp_form_fits(site):
            raise ValueError("the warp form takes fp16 rows of a multiple of 8 values, up to "
                             f"{WARP_MAX_COLS}, got {site.dtype(0)} x {site.shape(0)[-1]}")
        recipe = {"op": "layernorm-warp" if warp else "layernorm", "in": site.dtype(0), "out": site.outputs[0],
                  "round": _round(site), "w": site.dtype(1), "b": site.dtype(2) if has_b else "float32"}
        if has_r:
            recipe["r"] = site.dtype(3)
        rows, cols = _rows_of(site.shape(0))
        if warp:
            recipe["cols"] = cols
        k = kernel_for(recipe)
        grid, threads = ((-(-rows // WARP_ROWS),), (32 * WARP_ROWS,)) if warp else ((rows,), (threads_for(cols),))
        eps = np.float32(site.attrs.get("epsilon", 1e-5))

        def run(args):
            x = cp.ascontiguousarray(args[0])
            r = cp.ascontiguousarray(args[3]) if has_r else x
            w = cp.ascontiguousarray(args[1])
            b = cp.ascontiguousarray(args[2]) if has_b else w
            y = cp.empty(x.shape, _out_dtype(site.outputs[0]))
            if rows:
                shape = () if warp else (np.int32(cols),)
                k(grid, threads, (x, r, w, b, y, np.int64(rows), *shape, eps, np.int32(has_b)))
            return [y]

        return Kernel(run, label="rows-warp" if warp else "rows")


def _round(site):
    return site.precision if site.precision in ("fp16", "bf16") else None
