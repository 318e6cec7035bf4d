"""Row-wise kernels generated from recipes: Softmax and LayerNormalization over the last axis.

One thread block per row; statistics in float32 with warp shuffles; fp16 is read and written as
raw 16-bit words converted with PTX `cvt`, so no CUDA header is needed. The recipe (op, dtypes,
rounding) fully determines the source, which CuPy compiles once per architecture and caches on disk.
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
    body = _SOFTMAX if recipe["op"] == "softmax" else _LAYERNORM
    return "\n".join(defs) + _COMMON + body


def kernel_for(recipe: dict):
    key = json.dumps(recipe, sort_keys=True)
    k = _MODULES.get(key)
    if k is None:
        name = "wb_softmax" if recipe["op"] == "softmax" else "wb_layernorm"
        k = cp.RawKernel(source(recipe), name)
        _MODULES[key] = k
    return k


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
    def prepare(site, params, dev):
        has_b, has_r = site.present(2), site.op == "FusedLayerNorm" and site.present(3)
        recipe = {"op": "layernorm", "in": site.dtype(0), "out": site.outputs[0], "round": _round(site),
                  "w": site.dtype(1), "b": site.dtype(2) if has_b else "float32"}
        if has_r:
            recipe["r"] = site.dtype(3)
        k = kernel_for(recipe)
        rows, cols = _rows_of(site.shape(0))
        threads = threads_for(cols)
        eps = np.float32(site.attrs.get("epsilon", 1e-5))

        def run(args):
            x = cp.ascontiguousarray(args[0])
            r = cp.ascontiguousarray(args[3]) if has_r else x
            w = cp.ascontiguousarray(args[1])
            b = cp.ascontiguousarray(args[2]) if has_b else w
            y = cp.empty(x.shape, _out_dtype(site.outputs[0]))
            if rows:
                k((rows,), (threads,), (x, r, w, b, y, np.int64(rows), np.int32(cols), eps, np.int32(has_b)))
            return [y]

        return Kernel(run, label="rows")


def _round(site):
    return site.precision if site.precision in ("fp16", "bf16") else None
