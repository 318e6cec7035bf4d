"""Streaming elementwise kernels: CuPy ElementwiseKernel's interface, generated as a plain RawKernel.

CuPy's ElementwiseKernel indexes every element through its 64-bit strided indexer: on an H200 it
moved a 205M-element fp16 -> int8 cast in 0.97 ms whatever the operation, where a plain kernel took
0.36 ms and the copy engine 0.19 (benchmarks/probe_elementwise.py). The quantized layers' passes
(quantize X, dequantize the accumulator, round to the next layer's grid) are such streams over
contiguous activations, with per-channel vectors along the last axis: this module runs them as a
2-D grid (columns x rows), each thread loading its column's vectors once.

    >>> k = StreamKernel("float16 x, float32 unit", "int8 y", "y = (signed char)((float)x * unit);", "name")
    >>> y = k(x, unit)          # x (..., N) C-contiguous; unit (N,): one value per column

A stream without per-column vectors whose arrays are 16-byte aligned and whose size is a multiple of
VECTOR runs in the vector form instead: each thread moves VECTOR consecutive elements of every array
as whole 8- to 16-byte words (a 1- or 2-byte access per element left the quantize passes at under
half the memory's speed).

Arguments that are not C-contiguous, or broadcast other than along the last axis, run through
CuPy's ElementwiseKernel with the same source instead: the same results where the source fixes its
roundings (__fmul_rn, __fadd_rn), as the quantized sources do; NVRTC may contract a * b + c into
an FMA differently in the two.
"""
from __future__ import annotations

import numpy as np

from .device import cp

THREADS = 256
MAX_ROW_BLOCKS = 4096
UNROLL = 4
VECTOR = 8  # elements a thread moves at once in the vector form: 16-byte loads of fp16, 8-byte stores of int8
MAX_VECTOR_BLOCKS = 8192
C_TYPES = {"float16": "wb_f16", "float32": "float", "float64": "double", "int8": "signed char",
           "uint8": "unsigned char", "int16": "short", "int32": "int", "int64": "long long", "bool": "bool"}

# float16 as its bits, with the conversions CuPy's float16 class has, so the same sources compile
HALF_TYPE = r"""
struct wb_f16 {
  unsigned short bits;
  __device__ wb_f16() {}
  __device__ wb_f16(float f) { asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
  __device__ operator float() const { float r; asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(bits)); return r; }
};
typedef wb_f16 float16;
"""


def _params(spec: str) -> list:
    """'float16 x, float32 unit' -> [('float16', 'x'), ('float32', 'unit')]."""
    return [tuple(p.split()) for p in spec.split(",") if p.strip()]


def _check_names(params: list) -> None:
    """The kernels' own names start with wb_ (sources name their values freely), beside `i` (the element's
    index, as in CuPy's ElementwiseKernel) and the launch parameters."""
    taken = {n for _, n in params} & {"i", "rows", "cols", "lanes", "n_vectors"} | \
        {n for _, n in params if n.startswith("wb_")}
    if taken:
        raise ValueError(f"stream kernel parameter names {sorted(taken)} are the kernel's own")


def source(ins: list, outs: list, operation: str, name: str, preamble: str, columns: tuple) -> tuple:
    """(kernel name, CUDA source) of a stream over (rows, cols): `columns[i]` marks input i as one
    value per column (loaded once per thread), the others as full C-contiguous arrays."""
    name = f"{name}_s{''.join('c' if c else 'f' for c in columns)}"
    args = [f"const {C_TYPES[t]}* __restrict__ {n}_p" for t, n in ins]
    (ot, on), = outs
    args += [f"{C_TYPES[ot]}* __restrict__ {on}_p", "long long rows", "int cols", "int lanes"]
    _check_names(ins + outs)
    col_reads = [f"const {C_TYPES[t]} {n} = {n}_p[wb_col];" for (t, n), col in zip(ins, columns) if col]
    full = [(t, n) for (t, n), col in zip(ins, columns) if not col]
    # UNROLL rows per thread and pass, their loads issued before any store: one load in flight per thread
    # left the passes at half the memory's speed (latency, not bandwidth, bound them)
    loads = " ".join(f"wb_{n}[wb_u] = {n}_p[wb_i[wb_u]];" for _, n in full)
    picks = " ".join(f"const {C_TYPES[t]} {n} = wb_{n}[wb_u];" for t, n in full)
    arrays = " ".join(f"{C_TYPES[t]} wb_{n}[{UNROLL}];" for t, n in full)
    code = preamble + HALF_TYPE + f"""
extern "C" __global__ void __launch_bounds__({THREADS}) {name}({", ".join(args)}) {{
  // `lanes` threads span a row's columns; a block covers {THREADS} / lanes rows at a time
  const int wb_col = blockIdx.x * lanes + threadIdx.x % lanes;
  if (wb_col >= cols) return;
  {" ".join(col_reads)}
  const long long wb_step = (long long)gridDim.y * ({THREADS} / lanes);
  for (long long wb_row = (long long)blockIdx.y * ({THREADS} / lanes) + threadIdx.x / lanes; wb_row < rows;
       wb_row += {UNROLL} * wb_step) {{
    long long wb_i[{UNROLL}];
    {arrays}
#pragma unroll
    for (int wb_u = 0; wb_u < {UNROLL}; ++wb_u) {{
      wb_i[wb_u] = (wb_row + wb_u * wb_step) * cols + wb_col;
      if (wb_row + wb_u * wb_step < rows) {{ {loads} }}
    }}
#pragma unroll
    for (int wb_u = 0; wb_u < {UNROLL}; ++wb_u) {{
      if (wb_row + wb_u * wb_step >= rows) break;
      const long long i = wb_i[wb_u];
      {picks}
      {C_TYPES[ot]} {on};
      {operation}
      {on}_p[i] = {on};
    }}
  }}
}}
"""
    return name, code


_WORDS = {1: "char", 2: "short", 4: "int", 8: "int2", 16: "int4"}


def _move(dst: str, src: str, dtype: str) -> str:
    """C copying VECTOR elements of `dtype` from `src` to `dst` (both 16-byte aligned) in whole words."""
    size = VECTOR * np.dtype(dtype).itemsize
    word = min(size, 16)
    return " ".join(f"(({_WORDS[word]}*)({dst}))[{k}] = ((const {_WORDS[word]}*)({src}))[{k}];"
                    for k in range(size // word))


def vector_source(ins: list, outs: list, operation: str, name: str, preamble: str) -> tuple:
    """(kernel name, CUDA source) of the vector form: thread t of the grid-stride loop takes elements
    VECTOR * t .. VECTOR * t + VECTOR - 1 of every array (`n_vectors` such groups)."""
    name = f"{name}_v{VECTOR}"
    (ot, on), = outs
    args = [f"const {C_TYPES[t]}* __restrict__ {n}_p" for t, n in ins] + \
        [f"{C_TYPES[ot]}* __restrict__ {on}_p", "long long n_vectors"]
    _check_names(ins + outs)
    loads = " ".join(f"__align__(16) {C_TYPES[t]} wb_{n}[{VECTOR}]; {_move(f'wb_{n}', f'{n}_p + wb_at', t)}"
                     for t, n in ins)
    picks = " ".join(f"const {C_TYPES[t]} {n} = wb_{n}[wb_u];" for t, n in ins)
    code = preamble + HALF_TYPE + f"""
extern "C" __global__ void __launch_bounds__({THREADS}) {name}({", ".join(args)}) {{
  for (long long wb_v = (long long)blockIdx.x * {THREADS} + threadIdx.x; wb_v < n_vectors;
       wb_v += (long long)gridDim.x * {THREADS}) {{
    const long long wb_at = wb_v * {VECTOR};
    {loads}
    __align__(16) {C_TYPES[ot]} wb_out[{VECTOR}];
#pragma unroll
    for (int wb_u = 0; wb_u < {VECTOR}; ++wb_u) {{
      const long long i = wb_at + wb_u;
      {picks}
      {C_TYPES[ot]} {on};
      {operation}
      wb_out[wb_u] = {on};
    }}
    {_move(f"{on}_p + wb_at", "wb_out", ot)}
  }}
}}
"""
    return name, code


class StreamKernel:
    """ElementwiseKernel(in_params, out_params, operation, name, preamble) for contiguous streams."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str, preamble: str = ""):
        self.ins, self.outs = _params(in_params), _params(out_params)
        if len(self.outs) != 1:
            raise ValueError("a stream kernel writes one output")
        self.operation, self.name, self.preamble = operation, name, preamble
        self.fallback = cp.ElementwiseKernel(in_params, out_params, operation, name, preamble=preamble)
        self._raw: dict = {}

    def _kernel(self, columns: tuple | None):
        """The RawKernel for this choice of per-column inputs (True) and full inputs (False), or for
        the vector form (None)."""
        k = self._raw.get(columns)
        if k is None:
            name, code = vector_source(self.ins, self.outs, self.operation, self.name, self.preamble) \
                if columns is None else source(self.ins, self.outs, self.operation, self.name, self.preamble, columns)
            k = self._raw[columns] = cp.RawKernel(code, name)
        return k

    def _vectors(self, args, y) -> int:
        """How many VECTOR-element groups the vector form would take, or 0 where it cannot run."""
        if y.size % VECTOR or any(a.shape != y.shape or a.data.ptr % 16 for a in args) or y.data.ptr % 16:
            return 0
        return y.size // VECTOR

    def __call__(self, *args):
        (ot, _), = self.outs
        full = [a for a in args if a.ndim != 1] or list(args)
        shape = full[0].shape
        cols = int(shape[-1]) if shape else 1
        columns = tuple(a.ndim == 1 and len(shape) > 1 and a.shape[0] == cols for a in args)
        if len(args) != len(self.ins) or not all(a.flags.c_contiguous for a in args) or \
                not all(col or a.shape == shape for a, col in zip(args, columns)) or cols == 0 or cols >= 2 ** 31:
            return self.fallback(*args)
        y = cp.empty(shape, ot)
        vectors = 0 if any(columns) else self._vectors(args, y)
        if vectors:
            blocks = max(1, min(-(-vectors // THREADS), MAX_VECTOR_BLOCKS))
            self._kernel(None)((blocks,), (THREADS,), (*args, y, np.int64(vectors)))
            return y
        if not any(columns):  # no per-column vectors: any row length will do, so take a wide one
            cols = next((w for w in (1024, 256, 32) if y.size % w == 0), cols)
        rows = y.size // cols
        if rows == 0:
            return y
        lanes = max(d for d in (32, 64, 128, THREADS) if d <= min(THREADS, -(-cols // 32) * 32))  # per row
        rows_per_block = THREADS // lanes
        grid = (-(-cols // lanes), max(1, min(-(-rows // (rows_per_block * UNROLL)), MAX_ROW_BLOCKS)))
        self._kernel(columns)(grid, (THREADS,), (*args, y, np.int64(rows), np.int32(cols), np.int32(lanes)))
        return y
